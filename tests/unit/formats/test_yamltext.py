"""The bounded YAML reader on its own: the shapes it builds and every rule it enforces.

The recipe tests reach it through ``parse_stone``; these pin the structure itself (a value
after a nested container closes lands under the right key, nulls, key lines), so a faster
builder cannot quietly build another document.
"""

from __future__ import annotations

import pytest

from daemon.formats.yamltext import YamlError, load

NESTED = """\
name: n
packages:
    - "%(name)-devel":
        paths: [/usr/include, {/usr/lib/x.so: symlink}]
        rundeps:
            - a
      after: 1
    - plain
tuning:
    - lto: false
empty:
quoted: ''
tilde: ~
words: 'null'
last: |
    line one
    line two
"""


def test_nested_values_land_under_their_keys() -> None:
    doc = load(NESTED)
    assert doc.value == {
        "name": "n",
        "packages": [
            {"%(name)-devel": {"paths": ["/usr/include", {"/usr/lib/x.so": "symlink"}],
                               "rundeps": ["a"]},
             "after": "1"},
            "plain",
        ],
        "tuning": [{"lto": "false"}],
        "empty": None, "quoted": "", "tilde": None, "words": "null",
        "last": "line one\nline two\n",
    }  # fmt: skip
    assert doc.key_lines == {"name": 1, "packages": 2, "tuning": 9, "empty": 11, "quoted": 12,
                             "tilde": 13, "words": 14, "last": 15}  # fmt: skip
    assert doc.line_of("tuning") == 9 and doc.line_of(None) == 1 and doc.line_of("no") == 1


def test_scalars_stay_text_and_a_document_may_be_any_node() -> None:
    assert load("version: 1.10\nrelease: 007\nyes: on\n").value == {
        "version": "1.10", "release": "007", "yes": "on"}
    assert load("- a\n- [b, c]\n").value == ["a", ["b", "c"]]
    assert load("just text").value == "just text"
    assert load("").value is None
    assert load("? \n: v\n").value == {"": "v"}  # an empty key is the empty text


@pytest.mark.parametrize(("text", "line", "message"), [
    ("a: 1\nb:\n    c: 1\n    c: 2\n", 4, "key 'c' appears twice"),
    ("a: 1\n? [x]\n: 1\n", 2, "a mapping key must be a plain value"),
    ("a: 1\n---\nb: 2\n", 2, "one YAML document per file"),
    ("a: &x 1\n", 1, "anchors (&x) are not allowed"),
    ("a: &x [1]\nb: *x\n", 1, "anchors (&x) are not allowed"),
    ("a: *x\n", 1, "aliases (*name) are not allowed"),
    ("a: [1, 2\n", 2, "invalid YAML"),
])  # fmt: skip
def test_refusals_name_their_line(text: str, line: int, message: str) -> None:
    with pytest.raises(YamlError) as caught:
        load(text)
    assert caught.value.line == line and message in caught.value.message


def test_limits_count_every_node() -> None:
    text = "a: [1, 2, 3]\nb: {c: [4]}\n"
    # The document, a, its list, 1, 2, 3, b, its mapping, c, its list, 4: eleven nodes.
    assert load(text, max_nodes=11).value == {"a": ["1", "2", "3"], "b": {"c": ["4"]}}
    with pytest.raises(YamlError, match="more than 10 values"):
        load(text, max_nodes=10)
    with pytest.raises(YamlError, match="nested deeper than 2 levels"):
        load(text, max_depth=2)
    assert load("a: [1]\n", max_depth=2).value == {"a": ["1"]}
