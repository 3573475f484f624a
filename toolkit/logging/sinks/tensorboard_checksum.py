"""TensorBoard's record checksums computed in C.

Every record of an event file carries a masked CRC-32C of its bytes. Without TensorFlow installed,
TensorBoard computes it in Python, byte by byte (`tensorboard.compat.tensorflow_stub.pywrap_tensorflow
.crc32c`): about 8 MB/s, on the writer's thread, holding the interpreter lock the training loop needs.
A sample of 49 frames at 320x512 is a 9.8 MB GIF event, so 1.2 s of a stalled loop per sample (and
longer samples are tens of MB). `use_c_checksums` points TensorBoard's record writer at google-crc32c's
C implementation: the same checksum (tests/logging/test_tensorboard_checksum.py reads the events back
with TensorBoard's own reader, which checks every record with its Python one) at gigabytes a second.
"""

from __future__ import annotations

import google_crc32c

MASK_DELTA = 0xA282EAD8  # TFRecord's mask: rotate right by 15 bits, add this constant
UINT32 = 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """What `tensorboard.compat.tensorflow_stub.pywrap_tensorflow.masked_crc32c` returns for `data`."""
    crc = google_crc32c.value(bytes(data))
    return ((((crc >> 15) | (crc << 17)) & UINT32) + MASK_DELTA) & UINT32


def use_c_checksums() -> bool:
    """Have TensorBoard's record writer (used by torch's SummaryWriter) checksum in C; False, leaving it as it was,
    when google-crc32c runs its own Python fallback (no C extension for this platform), which is no faster."""
    if google_crc32c.implementation != "c":
        return False
    from tensorboard.summary.writer import record_writer

    record_writer.masked_crc32c = masked_crc32c
    return True
