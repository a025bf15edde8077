"""The Parquet records analysts read: one immutable file per (sweep, stage execution).
schema.py says what a record holds and builds it from a stage's metadata, write.py writes it
atomically and reconciles the records of finished work a crash left unrecorded, read.py reads
them back as one Arrow dataset."""
