#!/usr/bin/env python3
"""Checks a `farmctl conformance` report directory is well formed:
conformance.json parses and has the schema's keys, junit.xml parses as XML with
consistent counts, index.html has balanced tags, the matrix table, inline SVG
plots and no external assets. Exit 0 if fine, 1 with the reasons otherwise."""
import json
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
# Elements inside inline SVG that may be self-closed (<line/>, <rect/>, ...).
errors = []


class Balance(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack = []
        self.ids = set()
        self.tags = {}
        self.external = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            if a["id"] in self.ids:
                errors.append("duplicate id %r" % a["id"])
            self.ids.add(a["id"])
        self.tags[tag] = self.tags.get(tag, 0) + 1
        for k in ("src", "href"):
            v = a.get(k) or ""
            if v.startswith(("http:", "https:", "//")):
                self.external.append(v)
        if tag == "link":
            self.external.append("<link %s>" % a.get("href"))
        if tag not in VOID:
            self.stack.append((tag, self.getpos()))

    def handle_startendtag(self, tag, attrs):
        a = dict(attrs)
        self.tags[tag] = self.tags.get(tag, 0) + 1
        if "id" in a:
            self.ids.add(a["id"])

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack:
            errors.append("unexpected </%s> at %s" % (tag, self.getpos()))
            return
        top, pos = self.stack.pop()
        if top != tag:
            errors.append("</%s> at %s closes <%s> opened at %s" % (tag, self.getpos(), top, pos))


def main(d):
    with open(d + "/conformance.json") as f:
        rep = json.load(f)
    for k in ("schema", "run_id", "ok", "cells", "targets", "benches", "history", "summary"):
        if k not in rep:
            errors.append("conformance.json: no %r" % k)
    tree = ET.parse(d + "/junit.xml")
    root = tree.getroot()
    if root.tag != "testsuites":
        errors.append("junit.xml: root is %s" % root.tag)
    n = sum(1 for _ in root.iter("testcase"))
    if int(root.get("tests", -1)) != n:
        errors.append("junit.xml: tests=%s but %d testcases" % (root.get("tests"), n))
    fails = sum(1 for _ in root.iter("failure"))
    if int(root.get("failures", -1)) != fails:
        errors.append("junit.xml: failures=%s but %d <failure>" % (root.get("failures"), fails))
    with open(d + "/index.html") as f:
        html = f.read()
    p = Balance()
    p.feed(html)
    p.close()
    if p.stack:
        errors.append("index.html: unclosed %s" % p.stack[-5:])
    if p.external:
        errors.append("index.html: external assets %s" % p.external)
    for i in ("matrix", "details", "report-data", "history", "verdict"):
        if i not in p.ids:
            errors.append("index.html: no element #%s" % i)
    out = {
        "ok": rep.get("ok"),
        "cells": len(rep.get("cells", [])),
        "summary": rep.get("summary"),
        "junit_tests": n,
        "junit_failures": fails,
        "junit_skipped": sum(1 for _ in root.iter("skipped")),
        "svg": p.tags.get("svg", 0),
        "html_ids": sorted(i for i in p.ids if i.startswith("plot-")),
    }
    print(json.dumps(out))
    for e in errors:
        print("error: " + e, file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
