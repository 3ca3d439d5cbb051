"""Documents into text chunks sized for MiniLM: PDF pages via pypdf, plain text, markdown and HTML.

Chunks hold about `chunk_words` words (MiniLM reads 256 word pieces, roughly 200 English words),
break at paragraph or sentence ends, and repeat up to `overlap_words` words of the previous chunk so a
sentence cut at a boundary is still found. Offsets (`char_start`/`char_end`) index the page text (PDF)
or the document text (txt/md: the decoded file; HTML: its visible text).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from dataflux_pipelines.errors import MediaError, Reason
from dataflux_pipelines.media.probe import open_pdf, pdf_page_count
from dataflux_pipelines.media.screen_text import page_scan_images
from dataflux_pipelines.media.types import MediaAnalysis, Probe, SegmentDraft, TextFrame
from dataflux_pipelines.records import MediaType, SegmentType

if TYPE_CHECKING:
    from dataflux_pipelines.media.types import AnalysisOptions

_WORD = re.compile(r"\S+")
# A sentence ends at . ! ? (optionally followed by quotes/brackets) before whitespace, or at a paragraph break.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'”’)\]]*\s+|\n\s*\n")
_PARAGRAPH = re.compile(r"\n\s*\n")


@dataclass
class _Unit:
    start: int
    end: int
    words: int
    paragraph_end: bool


def _units(text: str, max_words: int) -> list[_Unit]:
    """Sentences (with their character spans); sentences longer than `max_words` cut into word runs."""
    units: list[_Unit] = []
    paragraph_breaks = {m.start() for m in _PARAGRAPH.finditer(text)}
    pos = 0
    boundaries = [(m.start(), m.end()) for m in _SENTENCE_END.finditer(text)] + [(len(text), len(text))]
    for end, next_start in boundaries:
        span = text[pos:end]
        words = list(_WORD.finditer(span))
        if words:
            start = pos + words[0].start()
            stop = pos + words[-1].end()
            is_paragraph_end = end in paragraph_breaks or end == len(text)
            if len(words) <= max_words:
                units.append(_Unit(start, stop, len(words), is_paragraph_end))
            else:
                for k in range(0, len(words), max_words):
                    run = words[k : k + max_words]
                    last = k + max_words >= len(words)
                    units.append(
                        _Unit(pos + run[0].start(), pos + run[-1].end(), len(run), is_paragraph_end and last)
                    )
        pos = next_start
    return units


def chunk_text(text: str, chunk_words: int = 225, overlap_words: int = 30) -> list[tuple[int, int]]:
    """(char_start, char_end) spans of chunks of about `chunk_words` words that end at sentence or
    paragraph boundaries and overlap the previous chunk by whole sentences up to `overlap_words`."""
    units = _units(text, chunk_words)
    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(units):
        j, words = i, 0
        while j < len(units) and (words == 0 or words + units[j].words <= chunk_words):
            words += units[j].words
            j += 1
            # Close early at a paragraph end once the chunk is reasonably full.
            if units[j - 1].paragraph_end and words >= 0.75 * chunk_words:
                break
        spans.append((units[i].start, units[j - 1].end))
        if j >= len(units):
            break
        # Start the next chunk with trailing sentences of this one (never all of them: progress).
        back, carried = j, 0
        while back - 1 > i and carried + units[back - 1].words <= overlap_words:
            back -= 1
            carried += units[back].words
        i = back
    return spans


class _VisibleText(HTMLParser):
    """Visible text of an HTML page: script, style and other non-rendered elements skipped,
    block elements separated by blank lines so paragraphs survive."""

    _SKIP: ClassVar[frozenset[str]] = frozenset({"script", "style", "noscript", "template", "svg", "head"})
    _BLOCK: ClassVar[frozenset[str]] = frozenset(
        {
            "p",
            "div",
            "br",
            "li",
            "ul",
            "ol",
            "h1",
            "h2",
            "h3",
            "h4",
            "h5",
            "h6",
            "tr",
            "table",
            "section",
            "article",
            "header",
            "footer",
            "blockquote",
            "pre",
            "hr",
            "dd",
            "dt",
            "main",
            "nav",
        }
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip_depth = 0
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        if tag in self._SKIP:
            self.skip_depth += 1
        elif tag in self._BLOCK:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        if tag in self._SKIP:
            self.skip_depth = max(0, self.skip_depth - 1)
        elif tag in self._BLOCK:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif not self.skip_depth:
            self.parts.append(data)

    def text(self) -> str:
        joined = "".join(self.parts)
        joined = re.sub(r"[ \t\r\f\v]+", " ", joined)
        joined = re.sub(r" *\n *", "\n", joined)
        return re.sub(r"\n{3,}", "\n\n", joined).strip()


def html_to_text(html: str) -> tuple[str, str]:
    """(visible text, title) of an HTML document, with the standard library's parser."""
    parser = _VisibleText()
    parser.feed(html)
    parser.close()
    return parser.text(), parser.title.strip()


def _chunk_segments(
    text: str, options: AnalysisOptions, segment_type: str, first_sequence: int, page: int | None = None
) -> list[SegmentDraft]:
    segments = []
    for k, (a, b) in enumerate(chunk_text(text, options.chunk_words, options.chunk_overlap_words)):
        chunk = text[a:b]
        segments.append(
            SegmentDraft(
                segment_type=segment_type,
                sequence_number=first_sequence + k,
                page=page,
                char_start=a,
                char_end=b,
                text=chunk,
                technical_features={"word_count": len(_WORD.findall(chunk)), "characters": b - a},
            )
        )
    return segments


def _pdf(path: Path, options: AnalysisOptions) -> MediaAnalysis:
    from pypdf.errors import PyPdfError

    reader = open_pdf(path)
    page_count = pdf_page_count(reader)
    segments: list[SegmentDraft] = []
    empty_pages = []
    scans: list[TextFrame] = []
    budget = options.max_text_chars
    truncated_at = None
    for number in range(1, page_count + 1):
        if budget <= 0:
            truncated_at = number
            break
        try:
            text = reader.pages[number - 1].extract_text() or ""
        except RecursionError as exc:
            raise MediaError(
                Reason.CORRUPT_MEDIA, f"page {number} has a looping or too deeply nested structure"
            ) from exc
        except (
            PyPdfError,
            ValueError,
            KeyError,
            TypeError,
            AttributeError,
            IndexError,
            ZeroDivisionError,
        ) as exc:
            raise MediaError(
                Reason.CORRUPT_MEDIA, f"the text of page {number} cannot be extracted: {exc}"
            ) from exc
        text = text[:budget]
        budget -= len(text)
        page_segments = _chunk_segments(text, options, SegmentType.PAGE, len(segments), page=number)
        if not page_segments:
            empty_pages.append(number)
            # No text layer: a scan. Its embedded images are read by OCR in the parent process.
            scans += page_scan_images(reader.pages[number - 1], number)
        segments += page_segments
    if not segments and not scans:
        raise MediaError(
            Reason.NO_TEXT,
            f"none of the PDF's {page_count} pages has extractable text or an embedded image to read",
        )
    summary: dict[str, Any] = {
        "page_count": page_count,
        "pages_without_text": empty_pages,
        "scanned_pages": sorted({f.page for f in scans if f.page is not None}),
        "chunks": len(segments),
    }
    if truncated_at is not None:
        summary["truncated"] = {"characters_kept": options.max_text_chars, "first_page_dropped": truncated_at}
    return MediaAnalysis(media_type=MediaType.DOCUMENT, segments=segments, summary=summary, text_frames=scans)


def _markdown_title(text: str) -> str:
    match = re.search(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, re.MULTILINE)
    return match.group(1) if match else ""


def _text_document(path: Path, probe: Probe, options: AnalysisOptions) -> MediaAnalysis:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MediaError(Reason.CORRUPT_MEDIA, f"text is not valid UTF-8 at byte {exc.start}") from exc
    summary: dict[str, Any] = {"format": probe.extension.lstrip(".")}
    if probe.mime_type == "text/html":
        text, title = html_to_text(text)
        summary["title"] = title
        summary["offsets"] = "visible_text"  # char offsets index the visible text, not the HTML source
    elif probe.mime_type == "text/markdown":
        summary["title"] = _markdown_title(text)
    if len(text) > options.max_text_chars:
        summary["truncated"] = {"characters": len(text), "kept": options.max_text_chars}
        text = text[: options.max_text_chars]
    segments = _chunk_segments(text, options, SegmentType.CHUNK, 0)
    if not segments:
        raise MediaError(Reason.NO_TEXT, "the document holds no words")
    summary["chunks"] = len(segments)
    summary["words"] = len(_WORD.findall(text))
    summary["characters"] = len(text)
    return MediaAnalysis(media_type=MediaType.DOCUMENT, segments=segments, summary=summary)


def analyze_document(path: Path | str, probe: Probe, options: AnalysisOptions) -> MediaAnalysis:
    """Chunk segments of a PDF (type "page", 1-based `page`) or of a txt/md/html file (type "chunk")."""
    path = Path(path)
    if probe.mime_type == "application/pdf":
        return _pdf(path, options)
    return _text_document(path, probe, options)
