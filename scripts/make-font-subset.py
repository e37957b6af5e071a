#!/usr/bin/env python3
"""Regenerates core/fonts/watermark-sc.otf, the CJK font the evidence watermark
is drawn with: Noto Sans CJK SC Bold (SIL OFL 1.1, Debian fonts-noto-cjk),
subset to printable ASCII, GB 2312 (its 6,763 hanzi and symbols) and the
punctuation a watermark uses. Hints are dropped: the watermark is drawn large.

    apt-get install -y fonts-noto-cjk
    pip install --target /tmp/ft fonttools && PYTHONPATH=/tmp/ft python3 scripts/make-font-subset.py
"""
import os
from fontTools import subset
from fontTools.ttLib import TTCollection

SOURCE = "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc"
SC = 2  # the collection's "Noto Sans CJK SC Bold"
OUT = os.path.join(os.path.dirname(__file__), "..", "core", "fonts", "watermark-sc.otf")

chars = set(chr(c) for c in range(0x20, 0x7F))
for hi in range(0xA1, 0xF8):
    for lo in range(0xA1, 0xFF):
        try:
            chars.update(bytes([hi, lo]).decode("gb2312"))
        except UnicodeDecodeError:
            pass
chars.update("°·—–…“”‘’、。，：；！？（）【】《》〈〉￥№℃±×÷")

font = TTCollection(SOURCE).fonts[SC]
options = subset.Options()
options.hinting = False
options.desubroutinize = False
options.layout_features = []
options.name_IDs = [0, 1, 2, 3, 4, 5, 6, 13, 14]
options.notdef_outline = True
sub = subset.Subsetter(options)
sub.populate(text="".join(sorted(chars)))
sub.subset(font)
font.save(OUT)
print(f"{len(chars)} characters -> {OUT} ({os.path.getsize(OUT)} bytes)")
