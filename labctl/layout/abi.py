"""The C ABIs a layout is computed for: sizes and alignments of the base types.

One :class:`Abi` per Linux target, keyed by the engine's architecture name. Adding a
target is one entry in :data:`ABIS`: a 32-bit one says ``long``/pointers are 4 bytes and
where 64-bit types are aligned inside structs (4 on i386, 8 on armv7).
"""

from __future__ import annotations

from dataclasses import dataclass

# Base type names after normalisation (see ``ctree._base_name``).
BASE_TYPES = (
    "char", "signed char", "unsigned char", "short", "unsigned short", "int", "unsigned int",
    "long", "unsigned long", "long long", "unsigned long long", "_Bool", "float", "double",
    "long double", "pointer",
)


@dataclass(frozen=True)
class Abi:
    """A target's data model.

    ``sizes``: base type -> (size, alignment inside a struct), in bytes.
    ``char_signed``: whether plain ``char`` is signed (x86: yes; ARM: no).
    ``max_align``: what a bare ``__attribute__((aligned))`` means.
    ``zero_width_aligns``: whether an unnamed zero-width bit-field counts in the struct's
    alignment (AAPCS does, System V x86 does not).
    ``zig_target``: the ``-target`` the preprocessor runs with, so target macros and
    ``<stdint.h>`` typedefs are the target's own.
    """

    name: str
    zig_target: str
    sizes: tuple[tuple[str, tuple[int, int]], ...]
    char_signed: bool
    max_align: int
    aliases: tuple[str, ...] = ()
    zero_width_aligns: bool = False  # AAPCS: an unnamed `int :0` raises the struct's alignment

    def size_align(self, base: str) -> tuple[int, int]:
        """(size, alignment) of a base type name from :data:`BASE_TYPES`."""
        return dict(self.sizes)[base]


def _lp64(long_double: tuple[int, int]) -> tuple[tuple[str, tuple[int, int]], ...]:
    return (
        ("char", (1, 1)), ("signed char", (1, 1)), ("unsigned char", (1, 1)), ("_Bool", (1, 1)),
        ("short", (2, 2)), ("unsigned short", (2, 2)), ("int", (4, 4)), ("unsigned int", (4, 4)),
        ("long", (8, 8)), ("unsigned long", (8, 8)), ("long long", (8, 8)), ("unsigned long long", (8, 8)),
        ("float", (4, 4)), ("double", (8, 8)), ("long double", long_double), ("pointer", (8, 8)),
    )


ABIS: dict[str, Abi] = {
    "x86_64": Abi("x86_64", "x86_64-linux-musl", _lp64((16, 16)), True, 16, ("amd64", "linux/amd64")),
    "aarch64": Abi("aarch64", "aarch64-linux-musl", _lp64((16, 16)), False, 16, ("arm64", "linux/arm64"),
                   zero_width_aligns=True),
}

# The ABIs every layout is computed (and validated) for; a file is accepted only when
# its layouts work on each, since `validate` cannot know the engine it will run on.
DEFAULT_ABIS = tuple(ABIS)


def abi_for(arch: str) -> Abi:
    """The ABI of an engine architecture (``x86_64``, ``aarch64``, or an alias such as
    ``amd64``/``linux/arm64``). Raises KeyError for an unknown one."""
    for abi in ABIS.values():
        if arch == abi.name or arch in abi.aliases:
            return abi
    raise KeyError(arch)
