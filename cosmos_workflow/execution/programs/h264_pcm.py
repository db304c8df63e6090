"""A tiny H.264 writer in an MP4 file: raw samples (I_PCM), no real compression.

The simulated model draws its pictures itself and needs a video any player
decodes, without a codec library on the host: this module writes baseline
H.264 (profile 66, constrained) in which every coded macroblock is an
I_PCM macroblock (its 384 samples stored as they are) and every macroblock
that did not change since the previous frame is skipped (a P slice copies
it). The first frame is the only keyframe. Deblocking is off, so every
decoded sample is exactly the one written: the same frames give the same
bytes, and decoders (FFmpeg, PyAV, browsers) show exactly the picture drawn.

Frames are planes of 8-bit samples, 4:2:0: ``(y, u, v)`` with ``y`` of
``16 * mb_width`` by ``16 * mb_height`` samples and ``u``, ``v`` half that in
each direction, row after row. The picture shown is cropped to the size
asked for (even numbers).

Standard library only: shipped beside simulated_model.py into each job
folder (see execution/adapters/simulated.py).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable

Planes = tuple[bytes, bytes, bytes]

LOG2_MAX_FRAME_NUM = 8
# mb_type of I_PCM: 25 in an I slice, 5 + 25 in a P slice.
I_PCM_IN_I = 25
I_PCM_IN_P = 30
PROFILE_BASELINE = 66
CONSTRAINED_BASELINE = 0xC0
LEVEL = 30
TIMESCALE_PER_FPS = 512


# Two zero bytes and a byte of 0 to 3: a start code could appear there.
_EMULATED = re.compile(rb"\x00\x00(?=[\x00-\x03])")


class BitWriter:
    """Bits, most significant first, into bytes (an RBSP)."""

    def __init__(self) -> None:
        self.data = bytearray()
        self._value = 0
        self._count = 0

    def bits(self, value: int, count: int) -> None:
        """Append the ``count`` low bits of ``value``."""
        self._value = (self._value << count) | (value & ((1 << count) - 1))
        self._count += count
        while self._count >= 8:
            self._count -= 8
            self.data.append((self._value >> self._count) & 0xFF)
        self._value &= (1 << self._count) - 1

    def ue(self, value: int) -> None:
        """Append an unsigned Exp-Golomb code."""
        code = value + 1
        self.bits(code, 2 * code.bit_length() - 1)

    def se(self, value: int) -> None:
        """Append a signed Exp-Golomb code."""
        self.ue(2 * value - 1 if value > 0 else -2 * value)

    def align_zero(self) -> None:
        """Zero bits up to the next byte boundary."""
        if self._count:
            self.bits(0, 8 - self._count)

    def raw(self, data: bytes) -> None:
        """Append whole bytes (the writer must be byte-aligned)."""
        self.data += data

    def trailing(self) -> bytes:
        """The RBSP with its stop bit and alignment."""
        self.bits(1, 1)
        self.align_zero()
        return bytes(self.data)


def nal(header: int, rbsp: bytes) -> bytes:
    """A NAL unit: its header byte and the RBSP with emulation prevention bytes.

    After two zero bytes, a byte of 0 to 3 gets a 3 in front of it, so that
    no start code appears inside the unit.
    """
    return bytes([header]) + _EMULATED.sub(b"\x00\x00\x03", rbsp)


def sps(width: int, height: int) -> bytes:
    """The sequence parameter set of a ``width`` x ``height`` picture."""
    mb_width, mb_height = -(-width // 16), -(-height // 16)
    bits = BitWriter()
    bits.bits(PROFILE_BASELINE, 8)
    bits.bits(CONSTRAINED_BASELINE, 8)
    bits.bits(LEVEL, 8)
    bits.ue(0)  # seq_parameter_set_id
    bits.ue(LOG2_MAX_FRAME_NUM - 4)
    bits.ue(2)  # pic_order_cnt_type: output order is decoding order
    bits.ue(1)  # max_num_ref_frames
    bits.bits(0, 1)  # gaps_in_frame_num_value_allowed_flag
    bits.ue(mb_width - 1)
    bits.ue(mb_height - 1)
    bits.bits(1, 1)  # frame_mbs_only_flag
    bits.bits(1, 1)  # direct_8x8_inference_flag
    crop_right, crop_bottom = (16 * mb_width - width) // 2, (16 * mb_height - height) // 2
    bits.bits(1 if crop_right or crop_bottom else 0, 1)
    if crop_right or crop_bottom:
        for offset in (0, crop_right, 0, crop_bottom):
            bits.ue(offset)
    bits.bits(0, 1)  # vui_parameters_present_flag
    return nal(0x67, bits.trailing())


def pps() -> bytes:
    """The picture parameter set: CAVLC, deblocking control present (to turn it off)."""
    bits = BitWriter()
    bits.ue(0)  # pic_parameter_set_id
    bits.ue(0)  # seq_parameter_set_id
    bits.bits(0, 2)  # entropy_coding_mode_flag, bottom_field_pic_order_in_frame_present_flag
    bits.ue(0)  # num_slice_groups_minus1
    bits.ue(0)  # num_ref_idx_l0_default_active_minus1
    bits.ue(0)  # num_ref_idx_l1_default_active_minus1
    bits.bits(0, 3)  # weighted_pred_flag, weighted_bipred_idc
    bits.se(0)  # pic_init_qp_minus26
    bits.se(0)  # pic_init_qs_minus26
    bits.se(0)  # chroma_qp_index_offset
    bits.bits(1, 1)  # deblocking_filter_control_present_flag
    bits.bits(0, 2)  # constrained_intra_pred_flag, redundant_pic_cnt_present_flag
    return nal(0x68, bits.trailing())


def macroblock(planes: Planes, stride: int, mb_x: int, mb_y: int) -> bytes:
    """The 384 samples of one macroblock in I_PCM order: 16x16 luma, 8x8 Cb, 8x8 Cr."""
    y, u, v = planes
    x0, y0 = 16 * mb_x, 16 * mb_y
    parts = [y[(y0 + r) * stride + x0 : (y0 + r) * stride + x0 + 16] for r in range(16)]
    half, cx, cy = stride // 2, 8 * mb_x, 8 * mb_y
    for plane in (u, v):
        parts += [plane[(cy + r) * half + cx : (cy + r) * half + cx + 8] for r in range(8)]
    return b"".join(parts)


def changed_macroblocks(
    planes: Planes, previous: Planes | None, stride: int, mb_width: int, mb_height: int
) -> list[int]:
    """Addresses of the macroblocks that differ from ``previous`` (all without one)."""
    if previous is None:
        return list(range(mb_width * mb_height))
    changed = []
    for mb_y in range(mb_height):
        rows = slice(16 * mb_y * stride, 16 * (mb_y + 1) * stride)
        crows = slice(8 * mb_y * stride // 2, 8 * (mb_y + 1) * stride // 2)
        same_row = planes[0][rows] == previous[0][rows] and all(
            planes[k][crows] == previous[k][crows] for k in (1, 2)
        )
        if same_row:
            continue
        for mb_x in range(mb_width):
            if macroblock(planes, stride, mb_x, mb_y) != macroblock(previous, stride, mb_x, mb_y):
                changed.append(mb_y * mb_width + mb_x)
    return changed


def slice_nal(
    planes: Planes, previous: Planes | None, index: int, mb_width: int, mb_height: int
) -> bytes:
    """Frame ``index`` as one slice: IDR of I_PCM macroblocks, or P with skips."""
    stride = 16 * mb_width
    idr = previous is None
    bits = BitWriter()
    bits.ue(0)  # first_mb_in_slice
    bits.ue(7 if idr else 5)  # slice_type: I or P (all slices of the picture)
    bits.ue(0)  # pic_parameter_set_id
    bits.bits(index % (1 << LOG2_MAX_FRAME_NUM), LOG2_MAX_FRAME_NUM)  # frame_num
    if idr:
        bits.ue(0)  # idr_pic_id
        bits.bits(0, 2)  # no_output_of_prior_pics_flag, long_term_reference_flag
    else:
        bits.bits(0, 3)  # num_ref_idx_active_override, ref_pic_list_modification, adaptive
    bits.se(0)  # slice_qp_delta
    bits.ue(1)  # disable_deblocking_filter_idc: off
    skipped = 0
    for address in changed_macroblocks(planes, previous, stride, mb_width, mb_height):
        if not idr:
            bits.ue(address - skipped)  # mb_skip_run
        bits.ue(I_PCM_IN_I if idr else I_PCM_IN_P)
        bits.align_zero()
        bits.raw(macroblock(planes, stride, address % mb_width, address // mb_width))
        skipped = address + 1
    if not idr and skipped < mb_width * mb_height:
        bits.ue(mb_width * mb_height - skipped)
    return nal(0x65 if idr else 0x41, bits.trailing())


def box(kind: bytes, *parts: bytes) -> bytes:
    """An MP4 box: 32-bit size, four-letter kind, content."""
    content = b"".join(parts)
    return struct.pack(">I", len(content) + 8) + kind + content


def full_box(kind: bytes, version: int, flags: int, *parts: bytes) -> bytes:
    """An MP4 full box (version and flags first)."""
    return box(kind, struct.pack(">I", (version << 24) | flags), *parts)


MATRIX = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)


def sample_table(
    sizes: list[int], delta: int, offset: int, avcc: bytes, size: tuple[int, int]
) -> bytes:
    """The stbl box: one sample description, one chunk at ``offset``."""
    width, height = size
    avc1 = box(
        b"avc1",
        bytes(6) + struct.pack(">H", 1) + bytes(16),
        struct.pack(">HHIIIH", width, height, 0x480000, 0x480000, 0, 1),
        bytes(32) + struct.pack(">Hh", 0x18, -1),
        avcc,
    )
    return box(
        b"stbl",
        full_box(b"stsd", 0, 0, struct.pack(">I", 1), avc1),
        full_box(b"stts", 0, 0, struct.pack(">III", 1, len(sizes), delta)),
        full_box(b"stss", 0, 0, struct.pack(">II", 1, 1)),
        full_box(b"stsc", 0, 0, struct.pack(">IIII", 1, 1, len(sizes), 1)),
        full_box(b"stsz", 0, 0, struct.pack(f">II{len(sizes)}I", 0, len(sizes), *sizes)),
        full_box(b"stco", 0, 0, struct.pack(">II", 1, offset)),
    )


def movie(sizes: list[int], fps: int, offset: int, avcc: bytes, size: tuple[int, int]) -> bytes:
    """The moov box of one video track."""
    timescale, delta = fps * TIMESCALE_PER_FPS, TIMESCALE_PER_FPS
    duration = len(sizes) * delta
    movie_ms = duration * 1000 // timescale
    mvhd = full_box(
        b"mvhd",
        0,
        0,
        struct.pack(">IIIIIH", 0, 0, 1000, movie_ms, 0x10000, 0x100),
        bytes(10),
        MATRIX,
        bytes(24),
        struct.pack(">I", 2),  # next_track_ID
    )
    width, height = size
    tkhd = full_box(
        b"tkhd",
        0,
        3,
        struct.pack(">IIIII", 0, 0, 1, 0, movie_ms),
        bytes(8) + struct.pack(">hhhH", 0, 0, 0, 0),
        MATRIX,
        struct.pack(">II", width << 16, height << 16),
    )
    mdhd = full_box(b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, timescale, duration, 0x55C4, 0))
    hdlr = full_box(b"hdlr", 0, 0, struct.pack(">I", 0) + b"vide" + bytes(12) + b"Video\0")
    dinf = box(b"dinf", full_box(b"dref", 0, 0, struct.pack(">I", 1), full_box(b"url ", 0, 1)))
    vmhd = full_box(b"vmhd", 0, 1, bytes(8))
    minf = box(b"minf", vmhd, dinf, sample_table(sizes, delta, offset, avcc, size))
    return box(b"moov", mvhd, box(b"trak", tkhd, box(b"mdia", mdhd, hdlr, minf)))


def write_mp4(frames: Iterable[Planes], width: int, height: int, fps: int) -> bytes:
    """An MP4 file (``moov`` before ``mdat``) of the frames as H.264.

    Args:
        frames: 4:2:0 planes of each frame, padded to whole macroblocks.
        width: Shown width (even; the planes may be wider, to a multiple of 16).
        height: Shown height (even).
        fps: Frames per second.

    Returns:
        The file's bytes.

    Raises:
        ValueError: No frame, an odd size or planes of the wrong length.
    """
    if width <= 0 or height <= 0 or width % 2 or height % 2:
        raise ValueError(f"the size must be even and positive, got {width}x{height}")
    mb_width, mb_height = -(-width // 16), -(-height // 16)
    luma = 256 * mb_width * mb_height
    samples, previous = [], None
    for index, planes in enumerate(frames):
        if [len(p) for p in planes] != [luma, luma // 4, luma // 4]:
            raise ValueError(f"frame {index}: planes of the wrong size for {width}x{height}")
        unit = slice_nal(planes, previous, index, mb_width, mb_height)
        samples.append(struct.pack(">I", len(unit)) + unit)
        previous = planes
    if not samples:
        raise ValueError("a video needs at least one frame")
    seq, pic = sps(width, height), pps()
    avcc = box(
        b"avcC",
        bytes([1, PROFILE_BASELINE, CONSTRAINED_BASELINE, LEVEL, 0xFF, 0xE1]),
        struct.pack(">H", len(seq)) + seq + bytes([1]) + struct.pack(">H", len(pic)) + pic,
    )
    ftyp = box(b"ftyp", b"isom", struct.pack(">I", 512), b"isomiso2avc1mp41")
    sizes = [len(s) for s in samples]
    head = len(ftyp) + len(movie(sizes, fps, 0, avcc, (width, height)))
    moov = movie(sizes, fps, head + 8, avcc, (width, height))
    return ftyp + moov + box(b"mdat", *samples)


def frame_count(data: bytes) -> int | None:
    """The number of samples of the first video track of an MP4 file, or None."""
    for track in children(data, 0, len(data), b"moov", b"trak"):
        handlers = children(data, *track, b"mdia", b"hdlr")
        if any(data[start + 8 : start + 12] == b"vide" for start, _ in handlers):
            for start, end in children(data, *track, b"mdia", b"minf", b"stbl", b"stsz"):
                if end - start >= 12:
                    return struct.unpack(">I", data[start + 8 : start + 12])[0]
    return None


def children(data: bytes, start: int, end: int, *kinds: bytes) -> list[tuple[int, int]]:
    """(content start, end) of the boxes at the path ``kinds`` under [start, end)."""
    found = []
    position = start
    while position + 8 <= end:
        size, kind = struct.unpack(">I4s", data[position : position + 8])
        header = 8
        if size == 1 and position + 16 <= end:
            size, header = struct.unpack(">Q", data[position + 8 : position + 16])[0], 16
        elif size == 0:
            size = end - position
        if size < header or position + size > end:
            break
        if kind == kinds[0]:
            inner = (position + header, position + size)
            found += [inner] if len(kinds) == 1 else children(data, *inner, *kinds[1:])
        position += size
    return found
