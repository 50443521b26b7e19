"""JVM artifacts (Delta's Spark writer, HBase, Kafka), fetched from Maven Central once.

Each *bundle* is a small Maven project under ``conf/jvm/<bundle>/pom.xml`` that pins its
versions next to the Python pins. ``fetch(bundle)`` runs Maven's
``dependency:copy-dependencies`` into ``<cache>/<bundle>/`` with a Maven repository of its
own under ``<cache>/m2``, and writes a stamp holding the pom's hash: a second call with the
same pom downloads nothing and starts no Maven. The cache is
``$SPARKFS_JVM_CACHE``, else ``$XDG_CACHE_HOME/sparkfs/jvm``, else ``~/.cache/sparkfs/jvm``,
so fresh clones on one machine share it.

Why Maven and not Spark's ``spark.jars.packages``: HBase and the Kafka broker are not Spark
packages, Ivy resolves again at every session start, and a pom keeps the pins reviewable.

>>> sorted(BUNDLES)
['delta', 'hbase', 'kafka', 'spark-kafka']
>>> pom_path("delta").name
'pom.xml'
>>> fetch("nope")
Traceback (most recent call last):
...
sparkfs.errors.JvmArtifactError: unknown JVM bundle 'nope'; known: delta, hbase, kafka, spark-kafka

Command line: ``python -m sparkfs.jvm fetch delta hbase`` prints each bundle's directory.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from .errors import JvmArtifactError

BUNDLES = ("delta", "hbase", "kafka", "spark-kafka")
_STAMP = ".sparkfs-fetched"


def poms_dir() -> Path:
    """Where the bundles' poms live: ``$SPARKFS_JVM_POMS`` or the repo's ``conf/jvm``."""
    env = os.environ.get("SPARKFS_JVM_POMS")
    return Path(env) if env else Path(__file__).resolve().parents[1] / "conf" / "jvm"


def cache_dir() -> Path:
    """The shared download cache (see the module docstring)."""
    env = os.environ.get("SPARKFS_JVM_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sparkfs" / "jvm"


def pom_path(bundle: str) -> Path:
    """The pom of ``bundle``; refuses an unknown bundle name."""
    if bundle not in BUNDLES:
        raise JvmArtifactError(f"unknown JVM bundle {bundle!r}; known: {', '.join(BUNDLES)}")
    return poms_dir() / bundle / "pom.xml"


def bundle_dir(bundle: str) -> Path:
    """The directory holding ``bundle``'s jars once fetched."""
    pom_path(bundle)
    return cache_dir() / bundle


def is_fetched(bundle: str) -> bool:
    """True when ``bundle``'s jars are in the cache for the current pom."""
    stamp = bundle_dir(bundle) / _STAMP
    return stamp.exists() and stamp.read_text().strip() == _pom_hash(bundle)


def jars(bundle: str) -> list[Path]:
    """The fetched jars of ``bundle`` (fetching them first when needed), sorted by name."""
    return sorted(fetch(bundle).glob("*.jar"))


def classpath(bundle: str) -> str:
    """``bundle``'s jars joined with ``os.pathsep``, for ``-cp`` or ``spark.jars``."""
    return os.pathsep.join(str(p) for p in jars(bundle))


def fetch(bundle: str, quiet: bool = True) -> Path:
    """Fetch ``bundle``'s pinned jars into the cache (a no-op when already there)."""
    pom = pom_path(bundle)
    out = bundle_dir(bundle)
    if is_fetched(bundle):
        return out
    mvn = shutil.which("mvn")
    if mvn is None:
        raise JvmArtifactError(
            f"cannot fetch the {bundle} jars: Maven ('mvn') is not installed; "
            "install it (apt-get install maven) or run `make setup`")
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    cmd = [mvn, "-B", "-f", str(pom), "dependency:copy-dependencies",
           f"-DoutputDirectory={tmp}", "-DincludeScope=runtime",
           f"-Dmaven.repo.local={cache_dir() / 'm2'}"]
    if quiet:
        cmd.insert(2, "-q")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise JvmArtifactError(f"cannot fetch the {bundle} jars ({pom}): "
                               + _maven_reason(proc.stdout + proc.stderr))
    (tmp / _STAMP).write_text(_pom_hash(bundle) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def _pom_hash(bundle: str) -> str:
    return hashlib.sha256(pom_path(bundle).read_bytes()).hexdigest()


def _maven_reason(output: str) -> str:
    """The lines of Maven's output that name the artifact and the registry's answer."""
    output = re.sub(r"\x1b\[[0-9;]*m", "", output)
    lines = [ln.removeprefix("[ERROR]").replace("-> [Help 1]", "").strip()
             for ln in output.splitlines() if ln.startswith("[ERROR]")]
    lines = [ln for ln in lines if ln]
    wanted = [ln for ln in lines
              if re.search(r"Could not|Failed to|not find|Missing|transfer|status", ln)]
    text = " | ".join((wanted or lines)[:4])
    return text or output.strip()[-500:] or "Maven failed without a message"


def main(argv: list[str] | None = None) -> int:
    """``python -m sparkfs.jvm fetch BUNDLE...``: fetch bundles, print their directories."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 2 or args[0] != "fetch":
        print("usage: python -m sparkfs.jvm fetch BUNDLE [BUNDLE...]  "
              f"(bundles: {', '.join(BUNDLES)})", file=sys.stderr)
        return 2
    try:
        for bundle in args[1:]:
            cached = is_fetched(bundle)
            path = fetch(bundle)
            n = len(list(path.glob("*.jar")))
            print(f"{bundle}: {n} jars in {path}" + (" (cached)" if cached else ""))
    except JvmArtifactError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
