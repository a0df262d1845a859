"""medai bundle export | import, and `bundle verify` of media (registered on installer.cli.bundle.app)."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from installer.cli.output import emit
from installer.core.sizes import human

out = Console()
err = Console(stderr=True)


def ask_volume(n: int, m: int) -> Optional[Path]:
    """Prompt for volume N of M on a terminal; None (stop, rerun resumes) where there is none."""
    if not sys.stdin.isatty():
        return None
    from installer.media.export import read_label

    while True:
        answer = typer.prompt(f"Insert volume {n} of {m} and give its mount point (empty to stop)", default="",
                              show_default=False, err=True).strip()
        if not answer:
            return None
        p = Path(answer)
        if p.is_dir():
            err.print(f"  {p}: {read_label(p)}", highlight=False)
            return p
        err.print(f"  {p}: not a directory", highlight=False)


def _bytes_bar(total: int, label: str):
    if not err.is_terminal:
        return None, lambda: None
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    bars = Progress(label, BarColumn(), DownloadColumn(), TransferSpeedColumn(), console=err, transient=True)
    task = bars.add_task(label, total=total)
    bars.start()
    return (lambda n: bars.advance(task, n)), bars.stop


def export(
    bundle: Path = typer.Argument(..., help="a finished, signed bundle directory"),
    to: list[Path] = typer.Option(..., "--to", help="mount point of the stick (repeat for volume 2, 3, ... of a spanned export)"),
    sign_key: Path = typer.Option(..., "--sign-key", help="the site private key that signed the bundle (signs the media manifest)"),
    max_file_size: Optional[str] = typer.Option(
        None, "--max-file-size", help="split files above this size (FAT32: at most 4 GiB - 1, the default there)"
    ),
    volume_size: Optional[str] = typer.Option(
        None, "--volume-size", help="capacity of each stick; the bundle spans as many as needed, each labelled N of M"
    ),
    parity: float = typer.Option(
        8.0, "--parity", help="recovery data (PAR2) per stick, % of its parts' blocks: that much damage is repaired at "
        "the site; 0 = none"
    ),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Write a bundle onto USB media: free space checked first, large files split, every part read back, PAR2
    recovery data written beside the parts."""
    from installer.core.progress import Progress, RichProgress
    from installer.media.export import ExportOptions, export_bundle, parse_size
    from installer.trust.signing import resolve_key

    key = resolve_key(sign_key)
    progress = RichProgress() if sys.stderr.isatty() else Progress()
    try:
        summary = export_bundle(
            ExportOptions(
                bundle=bundle,
                targets=list(to),
                sign_key=key,
                max_file_size=parse_size(max_file_size) if max_file_size else None,
                volume_size=parse_size(volume_size) if volume_size else None,
                progress=progress,
                ask=ask_volume,
                parity=parity,
            )
        )
    finally:
        progress.close()
    if as_json:
        sys.stdout.write(json.dumps(summary.to_json(), indent=1, sort_keys=True) + "\n")
        return
    out.print(
        f"[bold green]exported[/] {summary.bundle} (index sha256 {summary.index_sha256[:16]}…) onto "
        f"{len(summary.volumes)} volume(s); {summary.split_files} file(s) split into parts of at most "
        f"{human(summary.max_part_size) if summary.max_part_size else 'unlimited size'}",
        highlight=False,
    )
    for v in summary.volumes:
        out.print(
            f"  volume {v.volume} of {len(summary.volumes)}: {v.target} ({v.fstype}): {v.parts_written} part(s) "
            f"written ({human(v.bytes_written)}), {v.parts_skipped} already there and verified"
            + (f"; {v.recovery_files} PAR2 recovery file(s), {human(v.recovery_bytes)} ({v.parity_percent:g} %)"
               if v.recovery_files else "; no recovery data"),
            highlight=False,
        )


def import_(
    from_: Path = typer.Option(..., "--from", help="mount point of the stick (volume 1, or any volume)"),
    dest: Path = typer.Option(..., "--to", help="local bundle directory to create (a rerun resumes)"),
    key: Path = typer.Option(..., "--key", help="site public key: the media manifest and the index must verify with it"),
    volume: Optional[list[Path]] = typer.Option(None, "--volume", help="further volumes' mount points (else asked for)"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON (repaired parts included)"),
) -> None:
    """Copy a bundle off the media into a local directory, each part checked as it streams; a damaged part is
    rebuilt from the stick's recovery data into the copy (checked against its signed sha256); the stick is only read."""
    from installer.core.progress import Progress, RichProgress
    from installer.media.reader import import_media
    from installer.trust.keys import load_public_key

    pub = load_public_key(key)
    bars = RichProgress() if sys.stderr.isatty() else Progress()
    try:
        res = import_media([from_, *(volume or [])], dest, pub, ask=ask_volume, repair_progress=bars)
    finally:
        bars.close()
    if as_json:
        sys.stdout.write(json.dumps({"dest": str(dest), "copied": res.copied, "skipped": res.skipped,
                                     "bytesCopied": res.bytes_copied, "repaired": res.repaired,
                                     "recoveryNotUsed": res.recovery_not_used}, indent=1, sort_keys=True) + "\n")
        return
    out.print(
        f"[bold green]imported[/] into {dest}: {res.copied} file(s) copied ({human(res.bytes_copied)}), "
        f"{res.skipped} already there and verified"
        + (f", {len(res.repaired)} part(s) rebuilt from the recovery data" if res.repaired else ""),
        highlight=False,
    )
    for r in res.repaired:
        out.print(f"  repaired: {r} (sha256 checked against the signed media manifest)", highlight=False)
    for r in res.recovery_not_used:
        out.print(f"  recovery file not used: {r}", highlight=False)


def verify_media_cli(bundle: Path, key: Optional[Path], volumes: list[Path], as_json: bool) -> int:
    """`medai bundle verify MOUNT --key PUB` on media: exit status 0 passed, 3 damaged but repairable from the
    recovery data (import and install repair it), 1 failed (not repairable)."""
    from installer.core.errors import TrustError
    from installer.media.reader import verify_media
    from installer.trust.keys import load_public_key

    if key is None:
        raise TrustError(f"{bundle}: media are verified only with the site public key (--key)")
    res = verify_media([bundle, *volumes], load_public_key(key), ask=ask_volume)
    doc = {
        "media": str(bundle),
        "result": res.status,
        "indexSha256": res.index_sha256,
        "volumes": res.volumes,
        "files": res.files,
        "bytes": res.bytes,
        "problems": res.problems,
        "damaged": res.damage,
        "repair": res.repair,
        "notChecked": "image signatures: checked by `bundle verify` of the imported copy and by install",
    }
    emit(doc, as_json, [
        f"medai media verification: {res.status.upper()}",
        f"media:   {bundle} ({res.volumes} volume(s))",
        f"index:   sha256:{res.index_sha256} (signature verified)",
        f"files:   {res.files} streamed, {res.bytes} bytes, every part checked",
        f"note:    {doc['notChecked']}",
        *(f"damaged: volume {d['volume']}: part {d['part']}: {d['damage']}" for d in res.damage),
        *(f"{'repair:  ' if r['repairable'] else 'problem: '}{r['summary']}" for r in res.repair),
        *(f"recovery file not used: volume {r['volume']}: {n}" for r in res.repair for n in r["recoveryNotUsed"]),
        *(f"problem: {p}" for p in res.problems),
        *(["next:    `medai bundle import` / install / upgrade rebuild the damaged parts from the recovery data "
           "(the stick is only read)"] if res.repairable else []),
    ])
    return 0 if res.ok else 3 if res.repairable else 1


def verify_differential_cli(bundle: Path, base: Path, key: Optional[Path], as_json: bool) -> int:
    """`medai bundle verify DIFF --base DIR`: the differential, its base, and that together they are whole."""
    from installer.trust.differential import verify_union

    problems, summary = verify_union(bundle, base, key)
    doc = {**summary, "result": "passed" if not problems else "failed", "problems": problems}
    emit(doc, as_json, [
        f"medai differential verification: {doc['result'].upper()}",
        f"differential: {bundle} ({summary['carried']} files carried, {summary['fromBase']} from the base)",
        f"base:         {base} (index sha256 {summary['baseIndexSha256']})",
        *(["WARNING:      SIGNATURES NOT CHECKED: no --key"] if key is None else []),
        *(f"problem: {p}" for p in problems),
    ])
    return 0 if not problems else 1
