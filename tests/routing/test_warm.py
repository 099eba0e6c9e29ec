"""The kernels compiled in advance are those an engine runs on the data a server maps."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from routing.profiles import PROFILES

ROOT = Path(__file__).resolve().parents[2]

#: In a fresh process: warm up, then open each profile's mapped data (which also routes once,
#: see ``Engine._warm_up``); prints the kernels that compiled something more for it.
SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from numba.core.registry import CPUDispatcher
    from routing import cch, kernels, store
    from routing.engine import Engine
    from routing.warm import warm_up

    def compiled():
        return {
            f"{module.__name__}.{name}": len(value.signatures)
            for module in (cch, kernels)
            for name, value in vars(module).items()
            if isinstance(value, CPUDispatcher)
        }

    warm_up()
    before = compiled()
    for folder in sys.argv[1:]:
        engine = Engine(store._open(Path(folder)))
        assert engine.cch_state == "mapped", engine.cch_state
    after = compiled()
    print(json.dumps({
        "warmed": sum(before.values()),
        "more": sorted(k for k in after if after[k] != before.get(k, 0)),
    }))
    """
)


def run_script(script: str, mapped: Path) -> dict[str, Any]:
    """What ``script`` prints last, run in a fresh process on each profile's mapped data."""
    done = subprocess.run(
        [sys.executable, "-c", script, *(str(mapped / name) for name in PROFILES)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_warm_up_compiles_every_kernel_a_mapped_engine_runs(mapped: Path) -> None:
    result = run_script(SCRIPT, mapped)
    assert result["warmed"] > 0
    assert result["more"] == []


#: In a fresh process: warm the patch kernels, then patch each profile's mapped data as an
#: update patches the build it kept; prints the kernels that compiled something more for it.
PATCH_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from numba.core.registry import CPUDispatcher
    from routing import arrays, cch, kernels, store
    from routing.patch import PatchedEngine
    from routing.warm import patch_arrays, warm_patches

    def compiled():
        return {
            f"{module.__name__}.{name}": len(value.signatures)
            for module in (arrays, cch, kernels)
            for name, value in vars(module).items()
            if isinstance(value, CPUDispatcher)
        }

    warm_patches()
    before = compiled()
    for folder in sys.argv[1:]:
        previous = store._open(Path(folder))
        PatchedEngine(patch_arrays(previous), previous, search=False)
    after = compiled()
    print(json.dumps({
        "warmed": sorted(k for k in before if before[k]),
        "more": sorted(k for k in after if after[k] != before.get(k, 0)),
    }))
    """
)


def test_warm_patches_compiles_every_kernel_a_patch_of_mapped_data_runs(mapped: Path) -> None:
    result = run_script(PATCH_SCRIPT, mapped)
    assert {"routing.cch._recustomize", "routing.kernels.member_places"} <= set(result["warmed"])
    assert result["more"] == []
