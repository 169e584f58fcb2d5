"""Colour modes an .aec file can restore, with their one-byte codes in the container."""

from enum import IntEnum


class ColourMode(IntEnum):
    """How the decoded RGB pixels are turned back into the original image's mode.

    RGB   -- three 8-bit channels, coded as they are.
    L     -- grayscale: coded as R=G=B, restored by taking the first channel.
    RGBA  -- RGB coded lossily, alpha stored losslessly in the container.
    LA    -- grayscale plus lossless alpha.
    P     -- palette image: coded as RGB, restored by mapping to the stored palette.
    PA    -- palette plus lossless alpha.
    """

    RGB = 0
    L = 1
    RGBA = 2
    LA = 3
    P = 4
    PA = 5

    @property
    def has_alpha(self) -> bool:
        return self in (ColourMode.RGBA, ColourMode.LA, ColourMode.PA)

    @property
    def has_palette(self) -> bool:
        return self in (ColourMode.P, ColourMode.PA)
