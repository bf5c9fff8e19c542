"""`slawatch-config` (cmd/slawatch-config): the change workflow's first two steps, check and
preview, before the save that a running slawatch picks up (README, "Changing policies").

`check` parses a file exactly as a reload does (the same size bounds, the same loader), so its
messages are the ones the reload would log; a directory is checked file by file, as the
per-tenant reload reads it. `preview` sends the file to PreviewPolicy and prints the answer.

Exit codes: 0 valid (and previewed), 1 invalid, 2 anything else (unreadable file, bad usage,
server unreachable, refused token).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from internal.config.sla_config import ConfigError, SlaConfig, parse_served_config, read_config_file
from internal.config.tenant_configs import DEFAULT_SCOPE, config_files
from slawatch.client import SlawatchClient
from slawatch.v1 import ticket_service_pb2 as pb

OK, INVALID, FAILED = 0, 1, 2
TOKEN_VARIABLE = "SLAWATCH_TOKEN"


class Unreadable(Exception):
    pass


def _read(path: Path) -> bytes:
    """The file's bytes as the watcher reads them; ConfigError for what a reload refuses."""
    try:
        return read_config_file(path)
    except OSError as err:
        raise Unreadable(f"cannot read {path}: {err.strerror or err}") from None
    except ConfigError as err:
        raise ConfigError(f"refused {path}: {err}") from None


def _parse(path: Path) -> SlaConfig:
    data = _read(path)
    try:
        return parse_served_config(data)
    except ConfigError as err:
        raise ConfigError(f"refused {path}: {err}") from None


def _describe(config: SlaConfig) -> str:
    policies = (
        sum(len(tiers) for tiers in config.policies.values())
        if config.is_map_form
        else len(config.ordered_policies.policies)
    )
    metrics = ", ".join(d.name for d in config.metrics)
    return f"policy version {config.version}: {policies} policies; metrics {metrics}"


def check(path: Path, out: TextIO, err: TextIO) -> int:
    if path.is_dir():
        try:
            files = config_files(path)
        except OSError as e:
            print(f"cannot read {path}: {e.strerror or e}", file=err)
            return FAILED
        if not files:
            print(f"{path}: no <tenant>.yaml or default.yaml in the directory", file=err)
            return INVALID
    else:
        files = {DEFAULT_SCOPE: path}
    worst = OK
    for _, file in sorted(files.items()):
        try:
            config = _parse(file)
        except Unreadable as e:
            print(e, file=err)
            worst = max(worst, FAILED)
        except ConfigError as e:
            print(e, file=err)
            worst = max(worst, INVALID)
        else:
            print(f"{file}: ok, {_describe(config)}", file=out)
    return worst


_STATE = {v: k.removeprefix("SLA_STATE_") for k, v in pb.SlaState.items()}


def render_preview(p: pb.PreviewPolicyResponse) -> str:
    lines = [
        f"policy {p.current_version} -> {p.version}"
        f" (states at {p.evaluated_at.ToDatetime().isoformat()}Z)",
        f"open tickets: {p.open_tickets}, read in {p.batches} batches",
    ]
    if p.unmatched_tickets:
        lines.append(
            f"matched by no policy: {p.unmatched_tickets} (their clocks would stay as they are,"
            " and their next events would be refused)"
        )
    lines.append("state changes:" + ("" if p.state_changes else " none"))
    for s in p.state_changes:
        lines.append(f"  {_STATE[s.from_state]:>8} -> {_STATE[s.to_state]:<8} {s.tickets}")
    if p.policy_changes:
        lines.append("policy changes:")
        for c in p.policy_changes:
            lines.append(f"  {c.from_policy or '(none)'} -> {c.to_policy}: {c.tickets}")
    lines.append(f"next breach earlier: {p.breach_earlier}, later: {p.breach_later}")
    if p.sample_ticket_ids:
        lines.append("for example: " + ", ".join(p.sample_ticket_ids))
    return "\n".join(lines)


def _violations(e: grpc.RpcError) -> list[str]:
    status = rpc_status.from_call(e)  # type: ignore[arg-type]
    found = []
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            found += [f"{v.field}: {v.description}" for v in bad.field_violations]
    return found


def preview(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    path: Path = args.file
    try:
        text = _read(path).decode("utf-8", errors="replace")
    except Unreadable as e:
        print(e, file=err)
        return FAILED
    except ConfigError as e:
        print(e, file=err)
        return INVALID
    credentials = None
    if args.ca_file is not None:
        credentials = grpc.ssl_channel_credentials(args.ca_file.read_bytes())
    elif args.tls:
        credentials = grpc.ssl_channel_credentials()
    token = os.environ.get(args.token_env) or None
    with SlawatchClient(
        args.server, credentials=credentials, token=token, timeout=args.timeout
    ) as client:
        try:
            answer = client.preview_policy(text, sample_size=args.sample)
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.INVALID_ARGUMENT:
                for line in _violations(e) or [e.details() or "invalid"]:
                    print(f"refused {path}: {line.removeprefix('config_text: ')}", file=err)
                return INVALID
            print(f"preview failed: {e.code().name}: {e.details()}", file=err)
            return FAILED
    print(render_preview(answer), file=out)
    return OK


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="slawatch-config", description="Check an SLA config, or preview saving it."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("check", help="validate a config file (or a per-tenant directory)")
    c.add_argument("file", type=Path)
    p = sub.add_parser("preview", help="what saving the file would change (PreviewPolicy)")
    p.add_argument("file", type=Path)
    p.add_argument("--server", required=True, help="the gRPC address, HOST:PORT")
    p.add_argument(
        "--token-env",
        default=TOKEN_VARIABLE,
        help=f"the variable holding the bearer token (default {TOKEN_VARIABLE}; role admin)",
    )
    p.add_argument("--tls", action="store_true", help="TLS with the system's roots")
    p.add_argument("--ca-file", type=Path, help="TLS with this CA certificate (PEM)")
    p.add_argument("--sample", type=int, default=10, help="ticket ids to show (at most 100)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds (default 120)")
    return parser


def main(argv: Sequence[str], out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exit_:  # argparse: 2 on a usage error, 0 for --help
        return int(exit_.code or 0)
    if args.command == "check":
        return check(args.file, out, err)
    return preview(args, out, err)
