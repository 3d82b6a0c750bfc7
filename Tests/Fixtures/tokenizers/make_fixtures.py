#!/usr/bin/env python3
"""Regenerates the tokenizer parity fixture of slope's tests (BPETokenizerTests.testParityWithTheTokenizersLibrary):
a GPT-2-style and a LLaMA-3-style byte-level BPE tokenizer.json (LLaMA 3's Split pattern before a ByteLevel
mapping, ignore_merges, a TemplateProcessing post-processor adding <|begin_of_text|>) and two SentencePiece-style
ones (LLaMA 2's legacy normalizer Prepend + Replace, and Metaspace with prepend_scheme "first" as newer LLaMA and
Mistral files have; byte fallback, <unk> fused, <s> added) trained by the `tokenizers`
library on a little text, two GPT-2-style ones behind normalizers (NFC + Lowercase, NFD + Strip), two WordPiece ones (BERT's layout, and a
cased one behind NFD + StripAccents), and the ids that library gives for a text of edge cases (Unicode normalisation forms, special tokens in the text, whitespace runs,
CJK, emoji, a byte-order mark, numbers, contractions).

    /tmp/hf/bin/pip install tokenizers && /tmp/hf/bin/python Tests/Fixtures/tokenizers/make_fixtures.py [NAME …]

NAME is one of the groups in FIXTURES (all by default).
"""
import json
import os
import sys

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

HERE = os.path.dirname(os.path.abspath(__file__))

TRAINING = """The quick brown fox jumps over the lazy dog. It's a test; they're here, we've seen it, I'm sure he'll say he'd go.
Numbers 1234567 and 3.14159, dates 2026-12-06, emoji 🙂👍🏽 and CJK 日本語のテキスト 中文 한국어 텍스트.
  Indented   lines\twith\ttabs and\r\nWindows line ends.\n\n\nMany newlines.   Trailing spaces   \n""" * 3

EDGE_CASES = (
    "\ufeffA byte-order mark starts this text.\n"
    "Ångström written Å (U+00C5) and Å (U+212B, the angstrom sign); Kelvin K (U+212A) and K; Ohm Ω (U+2126) and Ω.\n"
    "Hangul NFC 한국어 and NFD 한국어; é and e\u0301; ﬁ ligature.\n"
    "A document ends<|endoftext|>and the next one starts. <|endoftext|> spaced, and <|endof text|> broken.\n"
    "Whitespace:  two,   three,\t\ttabs,\r\nCRLF, \u00a0no-break\u2003em space,    \n   \n\n\nruns.\n"
    "Numbers 0 12 345 6789 3.14159 1,000,000 ٣٤٥ (Arabic-Indic) Ⅻ (Roman).\n"
    "Contractions: it's they're we've I'm he'll she'd DON'T Y'ALL.\n"
    "Emoji 🙂👍🏽 👨‍👩‍👧‍👦 🇯🇵 and CJK 日本語のテキスト 中文字符 テスト。\n"
    "Symbols ©®™ → ≤≥ ∑∫ µ ‰ ¿¡ «» „“ ‘’ … — – · • €$£¥ #hash @at 100% a+b=c <tag> [x] {y} |z| ~`^\\.\n"
    "Zero-width\u200bspace, joiner\u200d, soft\u00adhyphen, control\u0007bell, null-free.\n"
)


LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|"
                  r"\s+(?!\S)|\s+")


def llama3_style():
    tokenizer = Tokenizer(models.BPE(ignore_merges=True))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=500, special_tokens=["<|begin_of_text|>", "<|end_of_text|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator([TRAINING], trainer)
    tokenizer.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B",
                                      special_tokens=[("<|begin_of_text|>", tokenizer.token_to_id("<|begin_of_text|>"))])])
    return tokenizer


def sentencepiece_style(legacy):
    """Characters merged by BPE (trained on the ▁-for-space text as one word, as SentencePiece sees it), with the
    256 <0xXX> byte tokens for characters outside the vocabulary (the training alphabet is limited so some are)."""
    base = Tokenizer(models.BPE())
    base.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<unk>", "<s>", "</s>"], limit_alphabet=60, show_progress=False)
    base.train_from_iterator([TRAINING], trainer)
    trained = json.loads(base.to_str())["model"]
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for byte in range(256):
        vocab["<0x%02X>" % byte] = len(vocab)
    for token, _ in sorted(trained["vocab"].items(), key=lambda item: item[1]):
        vocab.setdefault(token, len(vocab))
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[tuple(m) for m in trained["merges"]], byte_fallback=True,
                                     unk_token="<unk>", fuse_unk=True))
    tokenizer.add_special_tokens(["<unk>", "<s>", "</s>"])
    if legacy:
        tokenizer.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    else:
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    tokenizer.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)])
    return tokenizer


def byte_level(normalizer):
    """GPT-2-style byte-level BPE behind a normalizer (NFC + Lowercase, NFD + Strip), trained with it."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizer
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=500, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator([TRAINING], trainer)
    return tokenizer


def wordpiece(bert):
    """WordPiece as BERT has it (BertNormalizer lowercasing, BertPreTokenizer, [CLS] $A [SEP] by TemplateProcessing),
    cased behind NFD + StripAccents with WhitespaceSplit and BertProcessing, or ("symbols") behind NFC + Lowercase
    with the Whitespace pre-tokenizer (word runs and symbol runs)."""
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    if bert == "symbols":
        tokenizer.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Lowercase()])
        tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    elif bert:
        tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    else:
        tokenizer.normalizer = normalizers.Sequence([normalizers.NFD(), normalizers.StripAccents()])
        tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    trainer = trainers.WordPieceTrainer(vocab_size=600, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], show_progress=False)
    tokenizer.train_from_iterator([TRAINING], trainer)
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    if bert:
        tokenizer.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
                                                                 special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    else:
        tokenizer.post_processor = processors.BertProcessing(("[SEP]", sep), ("[CLS]", cls))
    return tokenizer


def write(name, tokenizer, text, decoded=True):
    """The ids `tokenizer` gives for `text` and the expected file's contents."""
    ids = tokenizer.encode(text).ids
    expected = {"text": text, "ids": ids}
    if decoded:
        expected["decoded"] = tokenizer.decode(ids, skip_special_tokens=False)
    return ids, expected


def sentencepiece_fixtures():
    text = EDGE_CASES.replace("<|endoftext|>", "</s>")
    for name, legacy in (("llama2", True), ("metaspace", False)):
        tokenizer = sentencepiece_style(legacy)
        save(tokenizer, f"{name}-style-bpe.json", f"{name}-edge-cases.json", text)


def llama3_fixtures():
    save(llama3_style(), "llama3-style-bpe.json", "llama3-edge-cases.json", EDGE_CASES.replace("<|endoftext|>", "<|end_of_text|>"),
         decoded=False)


def normalizer_fixtures():
    for name, normalizer in (("nfc-lowercase", normalizers.Sequence([normalizers.NFC(), normalizers.Lowercase()])),
                             ("nfd-strip", normalizers.Sequence([normalizers.NFD(), normalizers.Strip(left=True, right=True)]))):
        save(byte_level(normalizer), f"{name}-bpe.json", f"{name}-edge-cases.json", EDGE_CASES, decoded=False)


def wordpiece_fixtures():
    for name, bert in (("bert", True), ("wordpiece-cased", False), ("wordpiece-symbols", "symbols")):
        save(wordpiece(bert), f"{name}-wordpiece.json", f"{name}-edge-cases.json", EDGE_CASES.replace("<|endoftext|>", "[SEP]"))


def gpt2_fixture():
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=500, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator([TRAINING], trainer)
    save(tokenizer, "byte-level-bpe.json", "edge-cases.json", EDGE_CASES)


def compatibility_fixtures():
    """NFKC before byte-level BPE whose ByteLevel step follows Digits and Punctuation splits (a prefix space before
    each of their pieces); and NFKD + Lowercase before character-level BPE cut by Whitespace and Digits, with an
    unknown token and no decoder (the library then joins tokens with spaces), as the library's quick tour builds."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.Punctuation(behavior="merged_with_previous"),
        pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)])
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=500, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator([TRAINING], trainer)
    save(tokenizer, "nfkc-digits-bpe.json", "nfkc-digits-edge-cases.json", EDGE_CASES, decoded=False)

    tokenizer = Tokenizer(models.BPE(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFKD(), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace(), pre_tokenizers.Digits(individual_digits=False)])
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["[UNK]", "[SEP]"], show_progress=False)
    tokenizer.train_from_iterator([TRAINING], trainer)
    save(tokenizer, "nfkd-whitespace-bpe.json", "nfkd-whitespace-edge-cases.json", EDGE_CASES.replace("<|endoftext|>", "[SEP]"))


SPLIT_PATTERNS = (("regex", Regex(r"\s+|[,.;]")), ("regex-lookahead", Regex(r"(?=\p{Lu})")), ("string", " "))
BEHAVIOURS = ("removed", "isolated", "merged_with_previous", "merged_with_next", "contiguous")


def pre_tokenizer_fixture():
    """The words each splitting pre-tokenizer makes of the edge cases (pre_tokenize_str), to compare piece for piece."""
    cases = []
    for name, pattern in SPLIT_PATTERNS:
        for behaviour in BEHAVIOURS:
            for invert in (False, True):
                cases.append(pre_tokenizers.Split(pattern, behavior=behaviour, invert=invert))
    for behaviour in BEHAVIOURS:
        cases.append(pre_tokenizers.Punctuation(behavior=behaviour))
    cases += [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.Digits(individual_digits=False),
              pre_tokenizers.CharDelimiterSplit("-"), pre_tokenizers.Whitespace(), pre_tokenizers.WhitespaceSplit(),
              pre_tokenizers.BertPreTokenizer(),
              pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Digits(individual_digits=True)])]
    fixture = []
    for pre_tokenizer in cases:
        holder = Tokenizer(models.BPE())
        holder.pre_tokenizer = pre_tokenizer
        component = json.loads(holder.to_str())["pre_tokenizer"]
        fixture.append({"pre_tokenizer": component, "words": [word for word, _ in pre_tokenizer.pre_tokenize_str(EDGE_CASES)]})
    with open(os.path.join(HERE, "pre-tokenizers.json"), "w", encoding="utf-8") as f:
        json.dump({"text": EDGE_CASES, "cases": fixture}, f, ensure_ascii=True)
    print("pre-tokenizers:", len(fixture), "cases")


def save(tokenizer, tokenizer_file, expected_file, text, decoded=True):
    tokenizer.save(os.path.join(HERE, tokenizer_file))
    ids, expected = write(tokenizer_file, tokenizer, text, decoded)
    with open(os.path.join(HERE, expected_file), "w", encoding="utf-8") as f:
        json.dump(expected, f, ensure_ascii=True)
    print(f"{tokenizer_file}:", len(ids), "ids;", tokenizer.get_vocab_size(), "tokens")


FIXTURES = {"sentencepiece": sentencepiece_fixtures, "llama3": llama3_fixtures, "normalizers": normalizer_fixtures,
            "wordpiece": wordpiece_fixtures, "gpt2": gpt2_fixture, "compatibility": compatibility_fixtures,
            "pre-tokenizers": pre_tokenizer_fixture}


def main():
    """All fixtures, or those named (WordPiece training is not deterministic: regenerate those only when needed)."""
    for name in sys.argv[1:] or FIXTURES:
        FIXTURES[name]()


if __name__ == "__main__":
    main()
