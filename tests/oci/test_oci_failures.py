"""Bad input and interruptions on loopback: each a one-line RegistryError naming the image, and never a blob
under a wrong name. A SIGKILLed collection resumes and fetches only what is missing."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from installer.core.errors import LockDriftError, RegistryError
from installer.oci.images import collect_images
from installer.oci.layout import OCILayout
from installer.oci.registry import RegistryClient
from tests.support.images import LayoutWriter, layer_tgz, skopeo_push, write_big_image
from tests.support.registry_proxy import run_registry_proxy
from tests.support.servers import free_port

pytestmark = pytest.mark.loopback
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def client():
    with RegistryClient(retries=2, backoff=0.01) as c:
        yield c


def assert_blobs_sound(layout: OCILayout) -> None:
    for d in layout.blobs():
        assert "sha256:" + hashlib.sha256(layout.blob_path(d).read_bytes()).hexdigest() == d, f"{d} has a wrong name"


def test_unreachable_registry(tmp_path, client):
    ref = f"127.0.0.1:{free_port()}/demo/app:1.0"  # nothing listens there
    layout = OCILayout(tmp_path / "oci")
    with pytest.raises(RegistryError) as e:
        collect_images(client, layout, [ref], ["linux/amd64"])
    msg = str(e.value)
    assert msg.startswith(ref) and "unreachable" in msg and "\n" not in msg
    assert layout.blobs() == [] and layout.refs() == {}


def test_missing_tag_and_missing_repo(seeded_registry, tmp_path, client):
    layout = OCILayout(tmp_path / "oci")
    ref = f"{seeded_registry.host}/demo/app:no-such-tag"
    with pytest.raises(RegistryError, match=r"^\S+/demo/app:no-such-tag: tag no-such-tag not found in \S+/demo/app$"):
        collect_images(client, layout, [seeded_registry.base, ref], ["linux/amd64"])
    assert layout.refs() == {}  # nothing named when one image fails
    with pytest.raises(RegistryError, match="nothere/app:1.0: tag 1.0 not found"):
        collect_images(client, layout, [f"{seeded_registry.host}/nothere/app:1.0"], ["linux/amd64"])


def test_corrupted_blob_in_registry_storage(registry, tmp_path, client):
    w = LayoutWriter(tmp_path / "src")
    unique = layer_tgz({"corrupt/me.bin": os.urandom(64 * 1024)})
    w.tag("c", w.image([unique], label="corrupt"))
    ref = f"{registry.host}/demo/corrupt:1.0"
    skopeo_push(w.root, "c", ref)
    digest = "sha256:" + hashlib.sha256(unique).hexdigest()
    data = registry.root / "docker/registry/v2/blobs/sha256" / digest[7:9] / digest[7:] / "data"
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # same size, one byte flipped, as disk rot or tampering would
    data.write_bytes(bytes(raw))

    layout = OCILayout(tmp_path / "bundle" / "oci")
    with pytest.raises(RegistryError) as e:
        collect_images(client, layout, [ref], ["linux/amd64"])
    msg = str(e.value)
    assert msg.startswith(ref) and f"blob {digest} digest mismatch" in msg and "\n" not in msg
    assert not layout.has_blob(digest)
    assert not layout.partial_path(digest).exists()
    assert_blobs_sound(layout)
    assert layout.refs() == {}


def test_lock_drift(seeded_registry, tmp_path, client):
    s = seeded_registry
    layout = OCILayout(tmp_path / "oci")
    [img] = collect_images(client, layout, [s.app], ["linux/amd64"])
    # the lock's pin, keyed by the ref as written, and by its normalised name: both honoured
    collect_images(client, layout, [s.app], ["linux/amd64"], expected={s.app: img.digest})
    stale = "sha256:" + "1" * 64
    with pytest.raises(LockDriftError) as e:
        collect_images(client, layout, [s.app], ["linux/amd64"], expected={s.app: stale})
    assert str(e.value) == f"{s.app}: registry now resolves to {img.digest}, the lock pins {stale}"


KILL_SCRIPT = """
import sys
from installer.oci.images import collect_images
from installer.oci.layout import OCILayout
from installer.oci.registry import RegistryClient
with RegistryClient() as c:
    collect_images(c, OCILayout(sys.argv[1]), [sys.argv[2]], ["linux/amd64"])
"""


def test_sigkill_mid_blob_then_resume(registry, tmp_path):
    big = 24 * 1024 * 1024
    src = tmp_path / "src"
    desc = write_big_image(src, "big", [(big, 7), (256 * 1024, 8)])
    skopeo_push(src, "big", f"{registry.host}/demo/big:1.0")
    manifest = json.loads((src / "blobs/sha256" / desc["digest"][7:]).read_text())
    big_layer = max(manifest["layers"], key=lambda x: x["size"])

    layout = OCILayout(tmp_path / "bundle" / "oci")
    partial = layout.partial_path(big_layer["digest"])
    with run_registry_proxy(registry.host, throttle_bps=8 * 1024 * 1024) as proxy:
        ref = f"{proxy.host}/demo/big:1.0"
        proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(layout.path), ref], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if partial.exists() and partial.stat().st_size > 4 * 1024 * 1024:
                    break
                assert proc.poll() is None, proc.stdout.read().decode()
                time.sleep(0.02)
            else:
                pytest.fail("the big blob never started downloading")
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()

        assert not layout.has_blob(big_layer["digest"])  # never a half blob under its real name
        assert_blobs_sound(layout)
        assert layout.refs() == {}
        have = partial.stat().st_size
        assert 0 < have < big_layer["size"]
        missing = sum(b["size"] for b in [manifest["config"], *manifest["layers"]] if not layout.has_blob(b["digest"]))

        proxy.throttle_bps = 0
        with RegistryClient() as c:
            [img] = collect_images(c, layout, [ref], ["linux/amd64"])
            fetched = c.stats.blob_bytes
        # exactly what was missing, less what the killed run had already written
        assert fetched == missing - have
        # and the registry was asked for the rest of the big blob only: Range from where the killed run stopped
        assert proxy.blob_bytes.get((big_layer["digest"], f"bytes={have}-")) == big_layer["size"] - have
        assert img.digest == desc["digest"]
        assert layout.verify() == []
        assert not partial.exists()


# VmHWM, not ru_maxrss: Linux carries ru_maxrss across execve, so a child of a big pytest process would report
# its parent's size.
RSS_SCRIPT = KILL_SCRIPT + """
import re
print(int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)) // 1024)
"""


def test_memory_does_not_grow_with_blob_size(registry, tmp_path):
    """A 192 MiB blob streams through a bounded buffer: peak RSS stays far below the blob's size."""
    src = tmp_path / "src"
    write_big_image(src, "rss", [(192 * 1024 * 1024, 11)])
    ref = f"{registry.host}/demo/rss:1.0"
    skopeo_push(src, "rss", ref)
    out = subprocess.run([sys.executable, "-c", RSS_SCRIPT, str(tmp_path / "bundle" / "oci"), ref], cwd=ROOT,
                         capture_output=True, text=True, check=True, timeout=120)
    peak_mib = int(out.stdout.split()[-1])
    assert peak_mib < 160, f"peak RSS {peak_mib} MiB while collecting a 192 MiB blob"
    assert OCILayout(tmp_path / "bundle" / "oci").verify() == []
