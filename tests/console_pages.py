"""Readers for what the console serves, shared by its unit and integration tests: a strict HTML page
parser and a strict Prometheus text-format reader."""

import re
from html.parser import HTMLParser

SAMPLE = re.compile(
    r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*\})? (-?[0-9.e+]+)$'
)


class Page(HTMLParser):
    """Collects text, links and table rows of a rendered page; fails on unbalanced tags."""

    VOID = {"meta", "input", "br", "link", "img"}

    def __init__(self, html: str):
        super().__init__()
        self.stack, self.links, self.rows, self.text, self.scripts = [], [], [], [], 0
        self.feed(html)
        self.close()
        assert self.stack == [], f"unclosed tags: {self.stack}"

    BLOCKS = {"td", "th", "tr", "p", "h1", "h2", "h3", "li", "br", "section", "div", "option", "table", "label"}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in self.BLOCKS:
            self.text.append(" ")
        if tag == "script":
            self.scripts += 1
        if tag == "a":
            self.links.append(attrs.get("href"))
        if tag == "tr" and "data-outcome" in attrs:
            self.rows.append(attrs["data-outcome"])
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)

    @property
    def all_text(self) -> str:
        return " ".join("".join(self.text).split())


def parse_exposition(text: str) -> dict[tuple[str, tuple], float]:
    """A strict reader of the Prometheus text format 0.0.4: HELP then TYPE once per family, samples of a
    family together and after its TYPE, valid names, labels and values; returns {(name, labels): value}."""
    assert text.endswith("\n")
    samples, typed, current = {}, {}, None
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split()[2]
            assert name not in typed, f"family {name} repeated"
            current = name
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            assert name == current and kind in ("gauge", "counter")
            typed[name] = kind
        else:
            match = SAMPLE.match(line)
            assert match, f"bad sample line {line!r}"
            name = match.group(1)
            assert name == current, f"{name} outside its family block"
            labels = tuple(re.findall(r'([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
            assert (name, labels) not in samples, f"duplicate sample {line}"
            samples[(name, labels)] = float(match.group(3))
    return samples
