"""Bytes to numbered lines: encoding, BOM, binary sniffing and line endings, in bounded memory.

Bytes are cut at the last line ending of each chunk and decoded a batch (about 1 MB) at a time; a
line longer than MAX_LINE_BYTES is reported and skipped without being kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from shared.fec.rules import Findings

MAX_LINE_BYTES = 64 * 1024
LINE_TOO_LONG = "\x00 line too long"  # NULs never survive decoding, so no real line is this
ENDING_NAMES = {"\n": "LF", "\r\n": "CRLF", "\r\r\n": "CR CR LF", "\r": "CR"}


def with_sniffable_head(chunks: Iterable[bytes], size: int = 4096) -> Iterator[bytes]:
    """The same bytes, with the first chunk at least `size` long (for BOM and binary sniffing)."""
    iterator = iter(chunks)
    head = b""
    for chunk in iterator:
        head += chunk
        if len(head) >= size:
            break
    if head:
        yield head
    yield from iterator


class Lines:
    """Splits a byte stream into decoded lines, detecting encoding and line endings as it goes."""

    def __init__(self, findings: Findings) -> None:
        self.findings = findings
        self.encoding = "utf-8"
        self.bom = False
        self.non_ascii_seen = False
        self.newline: bytes | None = None
        self.ending = "\n"
        self.mixed_endings = False
        self.cr_cr_lf_seen = False
        self.line_number = 0
        self.final_newline = True
        self.fatal = False

    def _sniff(self, head: bytes) -> bytes | None:
        utf16_pattern = len(head) > 3 and b"\x00\x00" in (head[0:3:2], head[1:4:2])
        if head.startswith((b"\xff\xfe", b"\xfe\xff")) or utf16_pattern:
            self.findings.add("utf16", None)
            return None
        if head.startswith(b"\xef\xbb\xbf"):
            self.bom = True
            head = head[3:]
        if b"\x00" in head[:65536]:
            self.findings.add("not_text", None)
            return None
        return head

    def _decode(self, data: bytes) -> str:
        if self.encoding == "utf-8":
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                self.encoding = "iso-8859-15"
                if self.non_ascii_seen:
                    self.findings.add("mixed_encoding", self.line_number + 1)
                return data.decode("iso-8859-15")
            if not self.non_ascii_seen and not data.isascii():
                self.non_ascii_seen = True
            return text
        return data.decode("iso-8859-15")

    def _split(self, data: bytes, last: bool = False) -> list[str]:
        """Decoded lines of `data`, which ends just before a line ending (or at the end of file)."""
        text = self._decode(data)
        at = text.find("\x00")
        if at >= 0:
            self.findings.add("nul_byte", self.line_number + 1 + text.count(self.ending[-1], 0, at))
            text = text.replace("\x00", "")
        if self.newline == b"\r":
            return text.split("\r")
        ending = self.ending
        if ending == "\n":
            return text.split("\n") if "\r" not in text else self._normalised(text)
        if not last:  # `data` stops just before its last LF: the CRs of that ending are still there
            tail = ending[:-1]
            if not text.endswith(tail):
                return self._normalised(text)
            text = text[: len(text) - len(tail)]
        lines = text.split(ending)
        if text.count("\n") != len(lines) - 1:  # an LF that is not part of the file's line ending
            return self._normalised(text)
        return lines

    def _normalised(self, text: str) -> list[str]:
        """Lines of a file whose line endings are mixed: any of LF, CRLF, CR CR LF ends a line."""
        self.mixed_endings = True
        at = text.find("\r\r\n")
        if at >= 0:
            self._cr_cr_lf(self.line_number + 1 + text.count("\n", 0, at))
        return text.replace("\r\r\n", "\n").replace("\r\n", "\n").rstrip("\r").split("\n")

    def _cr_cr_lf(self, line: int) -> None:
        if not self.cr_cr_lf_seen:
            self.cr_cr_lf_seen = True
            self.findings.add("line_ending_cr_cr_lf", line)

    def _detect_newline(self, data: bytes) -> None:
        """The file's line ending, from its first line: LF, CRLF, CR CR LF or CR."""
        lf = data.find(b"\n")
        if lf < 0:
            if b"\r" in data:
                self.newline, self.ending = b"\r", "\r"
            return
        self.newline = b"\n"
        before = data[max(lf - 2, 0):lf]
        self.ending = "\r\r\n" if before == b"\r\r" else "\r\n" if before.endswith(b"\r") else "\n"
        if self.ending == "\r\r\n":
            self._cr_cr_lf(1)

    def batches(self, chunks: Iterable[bytes]) -> Iterator[tuple[int, list[str]]]:  # noqa: PLR0912
        """(number of the first line, lines) for each batch of complete lines."""
        carry = b""
        first = True
        skipping = False
        for chunk in with_sniffable_head(chunks):
            if not chunk:
                continue
            if first:
                chunk = self._sniff(chunk)  # noqa: PLW2901 - the BOM is cut off the first chunk only
                first = False
                if chunk is None:
                    self.fatal = True
                    return
            data = carry + chunk
            if self.newline is None:
                self._detect_newline(data)
            cut = data.rfind(self.newline) if self.newline else -1
            if cut < 0:
                carry = data
                if len(carry) > MAX_LINE_BYTES:
                    if not skipping:
                        self.findings.add("line_too_long", self.line_number + 1, limit=MAX_LINE_BYTES)
                        self.line_number += 1
                    skipping, carry = True, b""
                continue
            complete, carry = data[:cut], data[cut + 1:]
            if skipping:
                _, found, complete = complete.partition(self.newline)  # type: ignore[arg-type]
                skipping = False
                if not found:
                    continue
            yield self._numbered(complete)
        if first or not carry:
            return
        self.final_newline = False
        if skipping:
            return
        if self.newline is None:
            self.newline = b"\n"
        yield self._numbered(carry, last=True)

    def _numbered(self, data: bytes, last: bool = False) -> tuple[int, list[str]]:
        """(number of the first line, lines); lines over the limit are reported and replaced."""
        lines = self._split(data, last)
        start = self.line_number + 1
        self.line_number += len(lines)
        if lines and max(map(len, lines)) > MAX_LINE_BYTES:
            for offset, line in enumerate(lines):
                if len(line) > MAX_LINE_BYTES:
                    self.findings.add("line_too_long", start + offset, limit=MAX_LINE_BYTES)
                    lines[offset] = LINE_TOO_LONG
        return start, lines

    @property
    def line_ending(self) -> str:
        name = ENDING_NAMES[self.ending]
        return f"{name} (mixed)" if self.mixed_endings else name
