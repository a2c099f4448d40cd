"""`pipeline run | validate | plan | query | stages`.

Exit status: 0 success, 1 a run that completed with failed shards or an error at run time,
2 a bad manifest, bad arguments or an output that must not be overwritten (nothing written).
"""

from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console

from pipeline.errors import PipelineError


def _cmd_validate(args: argparse.Namespace, console: Console) -> int:
    from pipeline.run import plan_manifest

    plan = plan_manifest(args.manifest, args.output)
    console.print(f"OK: {len(plan.labels)} stages, output {plan.output_dir}")
    return 0


def _cmd_plan(args: argparse.Namespace, console: Console) -> int:
    from pipeline.planner import describe_stage
    from pipeline.run import plan_manifest

    plan = plan_manifest(args.manifest, args.output)
    description = {
        "manifest": str(plan.manifest.path),
        "output": str(plan.output_dir),
        "stages": [
            {"stage": p.label, "runs": p.stage.name, "companion": p.companion, **describe_stage(p.stage)}
            for p in plan.sources + plan.steps
        ],
        "output_columns": {f.name: str(f.type) for f in plan.schema},
    }
    if args.format == "json":
        console.out(json.dumps(description, indent=2))
        return 0
    for i, stage in enumerate(description["stages"]):
        step = f" then {stage['runs']} over its scores" if stage["companion"] else ""
        console.print(
            f"[bold]{i}. {stage['stage']}[/bold]{step} ({stage['kind']}"
            f"{', global barrier' if stage['global_barrier'] else ''})"
        )
        console.print(f"   params:    {json.dumps(stage['params'])}")
        console.print(f"   requires:  {', '.join(f'{k}: {v}' for k, v in stage['requires'].items()) or '-'}")
        console.print(f"   produces:  {', '.join(f'{k}: {v}' for k, v in stage['produces'].items()) or '-'}")
        console.print(f"   resources: {json.dumps(stage['resources'])}")
    console.print(f"output: {description['output']}")
    return 0


def _cmd_run(args: argparse.Namespace, console: Console) -> int:
    from pipeline.report import print_summary
    from pipeline.run import run_manifest

    summary = run_manifest(
        args.manifest, output=args.output, address=args.address, overwrite=args.overwrite, console=console
    )
    print_summary(summary, console)
    return 0 if summary.complete else 1


def _cmd_query(args: argparse.Namespace, console: Console) -> int:
    from pipeline.query import connect
    from pipeline.report import format_rows

    con = connect(args.output_dir)
    try:
        cursor = con.execute(args.sql)
    except Exception as exc:  # noqa: BLE001 - DuckDB errors are user errors here
        raise PipelineError(f"query failed: {exc}") from None
    columns = [d[0] for d in cursor.description or []]
    format_rows(columns, cursor.fetchall(), args.format, console)
    return 0


def _cmd_stages(args: argparse.Namespace, console: Console) -> int:
    from pipeline.registry import all_stages

    for name, cls in all_stages().items():
        doc = (cls.__module__ and (sys.modules[cls.__module__].__doc__ or "")).strip().splitlines()
        console.print(f"{name:28s} {doc[0] if doc else ''}", highlight=False)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pipeline", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a manifest on Ray")
    run.add_argument("manifest")
    run.add_argument("--address", help="join this Ray cluster instead of starting a local instance")
    run.add_argument("--output", help="output directory (overrides the manifest's `output`)")
    run.add_argument("--overwrite", action="store_true", help="replace a complete output")
    run.set_defaults(func=_cmd_run)

    validate = sub.add_parser("validate", help="check a manifest without running it")
    validate.add_argument("manifest")
    validate.add_argument("--output")
    validate.set_defaults(func=_cmd_validate)

    plan = sub.add_parser("plan", help="print each stage with its params, columns and resources")
    plan.add_argument("manifest")
    plan.add_argument("--output")
    plan.add_argument("--format", choices=("text", "json"), default="text")
    plan.set_defaults(func=_cmd_plan)

    query = sub.add_parser("query", help="SQL over an output: views `samples` and `rejects`")
    query.add_argument("output_dir")
    query.add_argument("sql")
    query.add_argument("--format", choices=("table", "csv", "json"), default="table")
    query.set_defaults(func=_cmd_query)

    stages = sub.add_parser("stages", help="list the registered stages")
    stages.set_defaults(func=_cmd_stages)
    return parser


def main(argv: list[str] | None = None) -> int:
    console = Console(soft_wrap=True)
    args = build_parser().parse_args(argv)
    try:
        return args.func(args, console)
    except PipelineError as exc:
        Console(stderr=True, soft_wrap=True).print(f"[red]error:[/red] {exc}", highlight=False)
        return exc.exit_code
    except Exception as exc:  # noqa: BLE001 - an unexpected failure still ends with a message and status 1
        Console(stderr=True, soft_wrap=True).print_exception(max_frames=8)
        Console(stderr=True, soft_wrap=True).print(
            f"[red]error:[/red] {type(exc).__name__}: {exc}", highlight=False
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
