import gzip
import io
import random
import time

import pytest

from gravitypm_ops.formats.streaming import BackgroundGzip, BackgroundIgzip, prefetch


def test_background_gzip_writes_a_standard_gzip_stream():
    sink = io.BytesIO()
    with BackgroundGzip(sink, compresslevel=6) as gz:
        for i in range(1000):
            gz.write(f"line {i}\n".encode())
    assert gzip.decompress(sink.getvalue()) == b"".join(f"line {i}\n".encode() for i in range(1000))


def test_background_igzip_writes_a_standard_gzip_stream():
    sink = io.BytesIO()
    with BackgroundIgzip(sink) as gz:
        for i in range(100_000):
            gz.write(f"line {i}\n".encode())
    assert gzip.decompress(sink.getvalue()) == b"".join(f"line {i}\n".encode() for i in range(100_000))


@pytest.mark.parametrize("background", [BackgroundGzip, BackgroundIgzip])
def test_background_gzip_abort_is_prompt_and_leaves_no_trailer(background):
    sink = io.BytesIO()
    started = time.monotonic()
    with pytest.raises(RuntimeError), background(sink) as gz:
        gz.write(b"partial")
        gz.write(random.Random(1).randbytes(1 << 20))  # enough that the compressor has emitted output
        while not sink.tell() and time.monotonic() - started < 4:
            time.sleep(0.01)
        raise RuntimeError("the dump failed")
    assert time.monotonic() - started < 5  # the worker noticed abort() (it used to wait 30 s)
    with pytest.raises(EOFError):
        gzip.decompress(sink.getvalue())  # truncated: can never pass for a complete stream


def test_background_gzip_reraises_a_failing_sink():
    class Broken:
        def write(self, data):
            raise OSError("upload failed")

    gz = BackgroundGzip(Broken())
    with pytest.raises(OSError, match="upload failed"):
        for _ in range(100):
            gz.write(b"x" * 65536)
        gz.close()


def test_prefetch_keeps_order_and_reraises_the_producers_error():
    assert list(prefetch(iter(range(10_000)), batch=7)) == list(range(10_000))

    def broken():
        yield 1
        raise ValueError("cursor died")

    with pytest.raises(ValueError, match="cursor died"):
        list(prefetch(broken()))
