"""The engine of an import's build, keeping the arrays it makes in files rather than memory."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from routing import store
from routing.engine import Engine, _ByNode, _Csr, _release_freed
from routing.store import Arrays


class SpillingEngine(Engine):
    """The engine (not searching) completing the arrays ``data`` of a new build, each array
    written to a file of ``folder`` once made and mapped back from it (see
    :func:`routing.store.spill`), its pages dropped after each step: the contraction, the
    step needing the most memory, runs without the rest in the process's memory, and the
    arrays are saved from the files. The arrays are those :class:`Engine` makes, byte for
    byte."""

    def __init__(self, data: Arrays, folder: Path) -> None:
        self._folder = folder
        super().__init__(store.spill(folder, data), search=False)
        self._spill()

    def _turn_geometry(self) -> None:
        self._spill()
        super()._turn_geometry()

    def _compile_turns(self) -> None:
        self._spill()
        super()._compile_turns()

    def _turn_metric(self) -> None:
        # The turn graph's arrays go to files before its metric is made, and the metric's
        # before the order is.
        self._spill()
        super()._turn_metric()
        self._spill()

    def _index_pieces(self) -> None:
        self._spill()
        super()._index_pieces()

    def _new_array(self, name: str, shape: tuple[int, ...], dtype: type[Any]) -> NDArray[Any]:
        if math.prod(shape) * np.dtype(dtype).itemsize < store.SPILL_BYTES:
            return super()._new_array(name, shape, dtype)
        self._folder.mkdir(parents=True, exist_ok=True)
        return np.memmap(self._folder / f"{name}.bin", dtype=dtype, mode="w+", shape=shape)

    def _written(self, *arrays: NDArray[Any]) -> None:
        store.release(*arrays)

    def _index_grid(self) -> None:
        self._spill()
        super()._index_grid()

    def _index_components(self) -> None:
        self._spill()
        super()._index_components()

    def _load_snapping(self) -> None:
        self._spill()
        super()._load_snapping()

    def _complete_cch(self, topology: Engine | None) -> None:
        self._spill()
        # The contraction goes to files before the customisation reads it, each metric before
        # the next is made.
        arrays, self.arrays = self.arrays, _Spilling(self._folder, self.arrays)
        try:
            super()._complete_cch(topology)
        finally:
            arrays.update(self.arrays)
            self.arrays = arrays
        self._spill()

    def _spill(self) -> None:
        """Write the arrays made so far to files, hold them (here and in the attributes made
        of them) mapped, and drop their pages."""
        a = self.arrays
        a.update(store.spill(self._folder, a))
        self.along = a["along"]
        if "first_bearing" in a:
            self._first_bearing, self._last_bearing = a["first_bearing"], a["last_bearing"]
        self.leaving = _ByNode(self.node_ids, _Csr(a["out_offsets"], a["out_edges"]))
        self.arriving = _ByNode(self.node_ids, _Csr(a["in_offsets"], a["in_edges"]))
        if hasattr(self, "origin"):
            self._load_turns()
        if hasattr(self, "_piece_xy"):
            Engine._load_snapping(self)
        store.release(*a.values())
        _release_freed()


class _Spilling(dict[str, NDArray[Any]]):
    """Arrays each spilled to a file of ``folder`` as it is stored (see
    :func:`routing.store.spill`), its pages dropped."""

    def __init__(self, folder: Path, arrays: Arrays) -> None:
        super().__init__(arrays)
        self._folder = folder

    def __setitem__(self, name: str, array: NDArray[Any]) -> None:
        spilled = store.spill(self._folder, {name: array})[name]
        store.release(spilled)
        super().__setitem__(name, spilled)

    def update(self, *others: Any, **arrays: NDArray[Any]) -> None:
        for name, array in dict(*others, **arrays).items():
            self[name] = array
