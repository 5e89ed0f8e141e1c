"""Compile the Solidity sources with the pinned solcjs and write the artifacts to ``contracts/build/``.

``python -m edge.chain.build`` recompiles and rewrites the artifacts; ``--check`` recompiles into memory
and exits 1 when the committed artifacts differ (stale). The compiler runs through
``contracts/scripts/compile.mjs`` (standard JSON in, standard JSON out) so that the compiler version is
the one pinned in ``contracts/package.json``; imports resolve from ``contracts/node_modules``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CONTRACTS_DIR = REPO_ROOT / "contracts"
SOURCES_DIR = CONTRACTS_DIR / "src"
BUILD_DIR = CONTRACTS_DIR / "build"
SETTINGS_PATH = CONTRACTS_DIR / "solc-settings.json"
COMPILE_SCRIPT = CONTRACTS_DIR / "scripts" / "compile.mjs"
NODE_MODULES = CONTRACTS_DIR / "node_modules"
BUILD_INFO_NAME = "build-info.json"
# Artifacts written for these contracts (test helpers included: the test-suite deploys them).
ARTIFACT_CONTRACTS: tuple[str, ...] = ("ParkgateRental", "ReentrancyAttacker")


class BuildError(RuntimeError):
    """Compilation failed or the toolchain is missing."""


@dataclass(frozen=True)
class Artifact:
    name: str
    source: str
    abi: list[dict]
    bytecode: str
    deployed_bytecode: str
    metadata: str

    def as_json(self) -> dict:
        return {
            "contractName": self.name, "sourceName": self.source, "abi": self.abi,
            "bytecode": "0x" + self.bytecode, "deployedBytecode": "0x" + self.deployed_bytecode,
            "metadata": self.metadata,
        }


def require_toolchain() -> str:
    """Path of ``node``; raises BuildError with the fix when node or the npm packages are missing."""
    node = shutil.which("node")
    if node is None:
        raise BuildError("node is not installed (apt-get install nodejs npm), needed to run solcjs")
    if not (NODE_MODULES / "solc").is_dir() or not (NODE_MODULES / "@openzeppelin" / "contracts").is_dir():
        raise BuildError(f"{NODE_MODULES} lacks solc / @openzeppelin/contracts: run `make test` or "
                         "`npm ci` in contracts/")
    return node


def source_files() -> dict[str, str]:
    """Source unit name ("src/X.sol") -> content, for every .sol file under contracts/src."""
    return {str(p.relative_to(CONTRACTS_DIR)): p.read_text() for p in sorted(SOURCES_DIR.rglob("*.sol"))}


def standard_json_input(sources: dict[str, str], settings: dict) -> dict:
    return {
        "language": "Solidity",
        "sources": {name: {"content": text} for name, text in sources.items()},
        "settings": settings,
    }


def load_settings() -> dict:
    return json.loads(SETTINGS_PATH.read_text())


def run_solc(compiler_input: dict) -> dict:
    """Run the pinned solcjs on a standard JSON input and return its standard JSON output."""
    node = require_toolchain()
    result = subprocess.run([node, str(COMPILE_SCRIPT)], input=json.dumps(compiler_input),
                            capture_output=True, text=True, cwd=CONTRACTS_DIR, check=False)
    if result.returncode != 0:
        raise BuildError(f"solcjs failed (exit {result.returncode}): {result.stderr.strip()[-2000:]}")
    output = json.loads(result.stdout)
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise BuildError("compilation errors:\n" + "\n".join(e["formattedMessage"] for e in errors))
    return output


def solc_version() -> str:
    node = require_toolchain()
    result = subprocess.run([node, str(COMPILE_SCRIPT), "--version"], capture_output=True, text=True,
                            cwd=CONTRACTS_DIR, check=True)
    return result.stdout.strip()


def extract_artifacts(output: dict) -> dict[str, Artifact]:
    """Pick the contracts listed in ARTIFACT_CONTRACTS out of a solc standard JSON output."""
    found: dict[str, Artifact] = {}
    for source, contracts in output.get("contracts", {}).items():
        for name, data in contracts.items():
            if name in ARTIFACT_CONTRACTS and source.startswith("src/"):
                found[name] = Artifact(
                    name=name, source=source, abi=data["abi"], bytecode=data["evm"]["bytecode"]["object"],
                    deployed_bytecode=data["evm"]["deployedBytecode"]["object"], metadata=data["metadata"],
                )
    missing = set(ARTIFACT_CONTRACTS) - set(found)
    if missing:
        raise BuildError(f"compiler output lacks contracts {sorted(missing)}")
    return found


def compile_all() -> tuple[dict[str, Artifact], dict]:
    """Compile every source; returns the artifacts and the build info (compiler + settings)."""
    settings = load_settings()
    output = run_solc(standard_json_input(source_files(), settings))
    info = {"compiler": "solcjs " + solc_version(), "settings": settings,
            "sources": sorted(source_files())}
    return extract_artifacts(output), info


def render(artifacts: dict[str, Artifact], info: dict) -> dict[str, str]:
    """File name -> exact file text for the build directory (deterministic, so it can be diffed)."""
    files = {f"{name}.json": json.dumps(a.as_json(), indent=2, sort_keys=True) + "\n"
             for name, a in artifacts.items()}
    files[BUILD_INFO_NAME] = json.dumps(info, indent=2, sort_keys=True) + "\n"
    return files


def differing_files(rendered: dict[str, str], build_dir: Path) -> list[str]:
    """Names of ``rendered`` files whose text in ``build_dir`` differs or is missing."""
    return [name for name, text in rendered.items()
            if not (build_dir / name).is_file() or (build_dir / name).read_text() != text]


def stale_files(build_dir: Path = BUILD_DIR) -> list[str]:
    """Names of build files whose committed text differs from a fresh compile (empty when up to date)."""
    return differing_files(render(*compile_all()), build_dir)


def write_build(build_dir: Path = BUILD_DIR) -> list[Path]:
    artifacts, info = compile_all()
    build_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render(artifacts, info).items():
        path = build_dir / name
        path.write_text(text)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge.chain.build", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if contracts/build is stale")
    args = parser.parse_args(argv)
    try:
        if args.check:
            stale = stale_files()
            if stale:
                print(f"stale artifacts in {BUILD_DIR}: {', '.join(stale)}; run `make contracts`")
                return 1
            print(f"{BUILD_DIR} is up to date")
            return 0
        for path in write_build():
            print(f"wrote {path.relative_to(REPO_ROOT)}")
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
