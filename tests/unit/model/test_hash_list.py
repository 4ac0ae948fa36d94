"""Hash lists are untrusted input: lists written here as hostile teams' tools and editors write
them (byte-order marks, stray quotes, old Mac line ends, huge fields, repeated hashes) are read
where they mean something, or refused with one line naming the file, the line and the fix."""

import gzip
import time

import numpy as np
import pytest

from nsfw_scan.model.hash_list import HashListError, Matching, parse_hash_list
from nsfw_scan.transforms.known_content import read_hash_list

RNG = np.random.default_rng(11)
A, B, C = (RNG.integers(0, 256, 32, dtype=np.uint8).tobytes().hex() for _ in range(3))
DIGITS = "1234567890" * 6 + "1234"  # a hash of digits only, which a CSV reader takes for a number


def near(value: str, bits: int = 3) -> str:
    flipped = bytearray(bytes.fromhex(value))
    flipped[5] ^= (1 << bits) - 1
    return bytes(flipped).hex()


def refused(data: bytes, origin: str = "known.csv") -> str:
    with pytest.raises(HashListError) as caught:
        parse_hash_list(data, origin)
    message = str(caught.value)
    assert "\n" not in message and len(message) < 400 and message.startswith(origin), message
    return message


@pytest.mark.parametrize("header", ["pdq,label", "label,pdq", "id,pdq,label"])
def test_a_byte_order_mark_is_dropped_before_any_first_column(header):
    fields = {"pdq": DIGITS, "label": "digits", "id": "7"}
    data = ("\ufeff" + header + "\n" + ",".join(fields[name] for name in header.split(",")) + "\n").encode()
    listed = parse_hash_list(data, "known.csv")
    assert len(listed) == 1 and listed.nearest(near(DIGITS)).label == "digits"


@pytest.mark.parametrize("end", ["\r", "\r\n", "\n"])
def test_lines_ending_in_cr_alone_are_lines(end):
    listed = parse_hash_list(end.join(["pdq,label", f"{A},first", f"{B},second", ""]).encode(), "known.csv")
    assert listed.labels == ["first", "second"]
    assert listed.nearest(near(B)).label == "second"


def test_a_quote_inside_a_field_is_text_and_one_that_does_not_close_is_named():
    listed = parse_hash_list(f'pdq,label\n{A},say "hi"\n{B},"quoted, with a comma"\n'.encode(), "known.csv")
    assert listed.labels == ['say "hi"', "quoted, with a comma"]
    # a quote left open would swallow the next line (and its hash) into the label
    message = refused(f'pdq,label\n{A},ok\n{B},"unclosed\n{C},lost\n'.encode())
    assert "line 3: a quote opens a field that does not close on this line" in message


@pytest.mark.parametrize("line", [
    f"{A}," + "x" * (130 << 10),  # a label over 128 KiB
    f'{A},"' + "x" * (130 << 10) + '"',  # quoted
    f'{A},"' + "x" * (90 << 10) + "\n" + "y" * (90 << 10) + '"',  # quoted across lines
    f"{A},fine," + "n" * (130 << 10),  # in a column the list ignores
])
def test_a_field_over_128_kib_is_named_by_its_line(line):
    header, ok = ("pdq,label,note", f"{B},ok,") if line.count(",") == 2 else ("pdq,label", f"{B},ok")
    message = refused(f"{header}\n{ok}\n{line}\n".encode())
    assert "line 3: " in message and ("longer than 131072 characters" in message or "does not close" in message)


def test_a_header_alone_is_a_list_of_no_hashes():
    for data in (b"pdq,label\n", b"\xef\xbb\xbfpdq,label,uri\r\n", b"pdq,label"):
        listed = parse_hash_list(data, "known.csv")
        assert len(listed) == 0 and listed.nearest(A) is None
    assert "the hash list is empty" in refused(b"")


def test_a_hash_listed_again_is_kept_once_and_a_query_stays_fast():
    data = ("pdq,label\n" + f"{A},copy\n" * 200_000 + f"{B},other\n").encode()
    listed = parse_hash_list(data, "known.csv")
    assert len(listed) == 2 and listed.repeated == 199_999 and listed.conflicts is None
    assert listed.labels == ["copy", "other"]
    started = time.perf_counter()
    for _ in range(20):
        assert listed.nearest(near(A)).label == "copy"
    # 200,000 copies made every query compare all of them (about 0.2 s each); now it is one
    assert (time.perf_counter() - started) / 20 < 0.02


def test_a_hash_listed_with_other_labels_keeps_its_first_line_s_and_the_warning_names_the_lines():
    lines = ["pdq,label", f"{A},takedown", f"{B},seen", "", f"{A.upper()},allowed", f"{A},takedown",
             f"{B},seen", f"{A},third\x1b[2J"]
    listed = parse_hash_list("\n".join(lines).encode(), "known.csv")
    assert listed.labels == ["takedown", "seen"] and listed.repeated == 4
    assert listed.nearest(A).label == "takedown"
    warning = listed.conflicts
    assert warning.startswith("known.csv: 1 hash is listed with different labels; each keeps its first line's label")
    assert "line 2 'takedown', line 5 'allowed', line 8 'third\\x1b[2J'" in warning
    assert "\x1b" not in warning and "\n" not in warning


def test_the_same_hashes_with_many_conflicts_make_one_bounded_warning():
    rows = [f"{RNG.integers(0, 256, 32, dtype=np.uint8).tobytes().hex()}" for _ in range(50)]
    data = ("pdq,label\n" + "".join(f"{h},a\n{h},b\n" for h in rows)).encode()
    listed = parse_hash_list(data, "known.csv")
    assert len(listed) == 50 and set(listed.labels) == {"a"}
    assert "50 hashes are listed with different labels" in listed.conflicts
    assert listed.conflicts.endswith("; and 47 more") and len(listed.conflicts) < 400


def test_labels_with_control_characters_are_kept_as_listed():
    listed = parse_hash_list(f"pdq,label\n{A},evil\x1b[2J\x00\n".encode(), "known.csv")
    assert listed.labels == ["evil\x1b[2J\x00"]  # escaped where printed or written, not here


def test_a_header_with_control_characters_is_named_escaped():
    message = refused(f"hash\x1b[2J,label\n{A},x\n".encode())
    assert "line 1: no column 'pdq'" in message and "hash\\x1b[2J,label" in message and "\x1b" not in message


def test_a_gzip_bomb_is_refused_by_the_decompressed_size_it_reaches(tmp_path):
    bomb = tmp_path / "known.csv.gz"
    with gzip.open(bomb, "wb", compresslevel=9) as f:
        f.write(f"pdq,label\n{A},x\n".encode())
        for _ in range(64):
            f.write(b"\n" * (1 << 20))  # 64 MiB of blank lines, 64 KiB compressed
    assert bomb.stat().st_size < 1 << 20
    with pytest.raises(HashListError) as caught:
        read_hash_list(Matching(str(bomb), max_list_bytes=8 << 20))
    message = str(caught.value)
    assert f"{bomb}: the hash list holds more than matching.max_list_bytes (8,388,608 bytes decompressed)" in message
    assert "\n" not in message
    # within the limit it is an ordinary list (the blank lines skipped)
    assert read_hash_list(Matching(str(bomb), max_list_bytes=80 << 20)).labels == ["x"]


def test_a_plain_list_over_the_limit_is_refused_too(tmp_path):
    listed = tmp_path / "known.csv"
    listed.write_text("pdq,label\n" + f"{A},x\n" * 1000)
    with pytest.raises(HashListError, match=r"known.csv: the hash list holds more than matching.max_list_bytes \(1,000 "):
        read_hash_list(Matching(str(listed), max_list_bytes=1000))
