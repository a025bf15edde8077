"""`senet`: the command line. Each subcommand imports what it needs when it runs, so that
`senet relu-count` answers in a second and `senet --help` never waits for Ray."""

from __future__ import annotations

import argparse
import errno
import sys
from collections.abc import Callable, Sequence

from orchestrator.errors import UserError

DESCRIPTION = """\
SENet ReLU-budget sweeps: measure per-layer ReLU sensitivity, search where the ReLUs go,
and fine-tune by distillation, for many budgets and distillation settings at once.

Start here:  senet init   (writes demo.toml)   then   senet validate demo.toml, senet run demo.toml
Debug path:  senet pipeline --model resnet20 --dataset digits --budget 2000
"""


# relu-count's bounds: 1024 px is 16x the largest image of any dataset here (Tiny-ImageNet's 64)
# and above ImageNet's 224; beyond it, counts describe no model anyone trains on these stages.
MAX_SIDE = 1024
MAX_CHANNELS = 64


def _add_relu_count(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "relu-count",
        help="per-layer ReLU counts of a model",
        description="Print each ReLU layer's activation shape and ReLU count for one image; "
        "the last line is `total <N>`.",
    )
    p.add_argument("model", help="resnet18 | resnet20 | wrn22_8 | vgg16_bn")
    p.add_argument(
        "--input-size", type=int, default=32, help=f"image side in pixels (32; 1 to {MAX_SIDE})"
    )
    p.add_argument(
        "--in-channels", type=int, default=3, help=f"image channels (3; 1 to {MAX_CHANNELS})"
    )
    p.add_argument(
        "--no-stem", action="store_true", help="exclude the stem ReLU (SNL's convention)"
    )
    p.set_defaults(func=cmd_relu_count)


def cmd_relu_count(args: argparse.Namespace) -> int:
    from stages.config import RULES
    from stages.models import build_model
    from stages.partial_relu import relu_layers

    if problem := RULES["model"].problem(args.model):
        raise UserError(f"model: {problem} (got {args.model!r})")
    if not 1 <= args.input_size <= MAX_SIDE:
        raise UserError(f"--input-size: must be in [1, {MAX_SIDE}] (got {args.input_size})")
    if not 1 <= args.in_channels <= MAX_CHANNELS:
        raise UserError(f"--in-channels: must be in [1, {MAX_CHANNELS}] (got {args.in_channels})")
    # Traced on the meta device: shapes only, no memory for activations and no arithmetic.
    model = build_model(args.model, 10, args.in_channels).to("meta")
    try:
        layers = relu_layers(model, args.input_size, args.in_channels, not args.no_stem)
    except RuntimeError as e:
        raise UserError(f"{args.model} cannot run at --input-size {args.input_size}: {e}") from e
    width = max(len(layer.name) for layer in layers)
    print(f"{'layer':<{width}}  {'shape (C,H,W)':>16}  {'ReLUs':>10}")
    for layer in layers:
        shape = "x".join(map(str, layer.shape))
        print(f"{layer.name:<{width}}  {shape:>16}  {layer.count:>10,}")
    print(f"total {sum(layer.count for layer in layers)}")
    return 0


def _add_pipeline(sub: argparse._SubParsersAction, full: bool = True) -> None:
    """The pipeline's options list the stages' choices, which imports torch (seconds): they
    are added only when the command line asks for `pipeline`, so `senet results` stays fast."""
    p = sub.add_parser(
        "pipeline",
        help="run the three stages in this process (no Ray): the debug path",
        description="Run stage 1 (sensitivity), stage 2 (mask search) and stage 3 (distillation) "
        "for one budget in this process and print accuracy and ReLU count. Artifacts go to a "
        "content-addressed store, so a rerun reuses finished stages.",
    )
    if full:
        from orchestrator.cli.pipeline_cmd import add_arguments, cmd_pipeline

        add_arguments(p)
        p.set_defaults(func=cmd_pipeline)


def _add_sweep_commands(sub: argparse._SubParsersAction) -> None:
    from orchestrator.cli.sweep_cmds import add_run, add_validate

    add_validate(sub)
    add_run(sub)


def _add_init(sub: argparse._SubParsersAction) -> None:
    from orchestrator.cli.init_cmd import add_init

    add_init(sub)


def _add_slurm(sub: argparse._SubParsersAction) -> None:
    from orchestrator.cli.slurm_cmds import add_slurm_commands

    add_slurm_commands(sub)


def _add_results(sub: argparse._SubParsersAction) -> None:
    from orchestrator.cli.results_cmd import add_results

    add_results(sub)


def _add_verify(sub: argparse._SubParsersAction) -> None:
    from orchestrator.cli.verify_cmd import add_verify

    add_verify(sub)


def _add_export(sub: argparse._SubParsersAction) -> None:
    from orchestrator.cli.export_cmd import add_export

    add_export(sub)


def _add_compact(sub: argparse._SubParsersAction) -> None:
    from orchestrator.cli.compact_cmd import add_compact

    add_compact(sub)


SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_init,
    _add_sweep_commands,
    _add_relu_count,
    _add_pipeline,
    _add_results,
    _add_slurm,
    _add_verify,
    _add_compact,
    _add_export,
]


def build_parser(command: str | None = "pipeline") -> argparse.ArgumentParser:
    """The whole parser; `command` names the subcommand about to run, so only `pipeline`
    (or None: the whole help) pays for the pipeline's options."""
    parser = argparse.ArgumentParser(
        prog="senet", description=DESCRIPTION, formatter_class=argparse.RawTextHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in SUBCOMMANDS:
        if add is _add_pipeline:
            _add_pipeline(sub, full=command in (None, "pipeline"))
        else:
            add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(args_in[0] if args_in and not args_in[0].startswith("-") else None)
    args, extra = parser.parse_known_args(argv)
    if extra:  # `run SWEEP --workdir W k=v`: argparse leaves positionals after an option over
        if not isinstance(getattr(args, "overrides", None), list) or any(
            e.startswith("-") for e in extra
        ):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = [*args.overrides, *extra]
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        print(f"senet {args.command}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a full disk, whichever write met it: one line naming the file
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        print(f"senet {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"senet {args.command}: interrupted; rerun the same command to resume", file=sys.stderr
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
