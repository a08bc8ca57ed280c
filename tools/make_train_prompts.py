#!/usr/bin/env python3
"""Write a JSONL file of diverse user prompts for self-distilling a drafter.

The target (e.g. SmolLM2-135M-Instruct) answers each prompt (``train --generate``) and the drafter
learns from those answers, so the prompts should look like what the target is asked in practice:

* ~45% general chat and instructions (explanations for a given audience, how-to advice, comparisons,
  lists of tips, short creative writing, emails and messages, summarising or rewriting a passage
  built from templates, definitions, pros and cons, plans, general-knowledge questions, advice),
* ~35% coding (Python functions and classes, explaining and debugging snippets, unit tests, some
  JavaScript / SQL / bash / C, and prompts built from real functions and docstrings of the Python
  standard library found on disk),
* ~20% maths and reasoning word problems with randomised numbers, asking for step-by-step working.

Standard library only and deterministic: the same ``--seed`` gives a byte-identical file (for the
same Python installation, whose standard library is harvested). No prompt equals an evaluation
prompt (``mlx_specdec_plugin/prompts/*.jsonl``) or shares a 6-word sequence with one (lowercased,
punctuation stripped); prompts equal to one of the older training set
(``mlx_specdec_plugin/data/train_prompts.jsonl``) are dropped as well.

    python tools/make_train_prompts.py --out prompts.jsonl [--n 8000] [--seed 0]

The per-category counts go to stderr. The word tables (concepts, tasks, audiences, names, ...) are
data, in ``tools/data/train_prompt_words.json``; this file holds the templates that use them.
"""
from __future__ import annotations

import argparse
import ast
import functools
import json
import os
import random
import re
import sys
import sysconfig
import textwrap
import time
from collections import Counter

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EVAL_FILES = [os.path.join(REPO_ROOT, "mlx_specdec_plugin", "prompts", f + ".jsonl") for f in ("chat", "code", "math")]
OLD_TRAIN_FILE = os.path.join(REPO_ROOT, "mlx_specdec_plugin", "data", "train_prompts.jsonl")
SHARES = (("chat", 0.45), ("code", 0.35), ("math", 0.20))
NGRAM = 6
MAX_CORE = 3          # at most this many prompts built around the same core item (concept, task, ...)


DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "train_prompt_words.json")
with open(DATA, encoding="utf-8") as _f:
    WORDS = json.load(_f)  # the word tables: {name: [line, ...] or [[field, ...], ...]}


def words(name):
    """A word table of :data:`DATA`: a list of lines."""
    return list(WORDS[name])


def pairs(name):
    """A word table of :data:`DATA` whose lines are tuples of fields."""
    return [tuple(x) for x in WORDS[name]]


def L(block):
    """Non-empty stripped lines of a text block."""
    return [x.strip() for x in block.strip().splitlines() if x.strip()]


def P(block, sep="|"):
    """Lines split into tuples on `sep`."""
    return [tuple(p.strip() for p in x.split(sep)) for x in L(block)]


def cap(s):
    return s[:1].upper() + s[1:]


def a_an(phrase):
    return ("an " if phrase.lstrip("`")[:1].lower() in "aeiou" else "a ") + phrase


def num_word(k):
    return ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"][k] if k <= 10 else str(k)


def money(cur, x):
    if abs(x - round(x)) < 1e-9:
        return f"{cur}{int(round(x))}"
    return f"{cur}{x:.2f}"


# --------------------------------------------------------------------------------------------------
# Held-out exclusion
# --------------------------------------------------------------------------------------------------
_PUNCT = re.compile(r"[^\w\s]|_")


def token_variants(text):
    """Lowercased word sequences with punctuation removed, and with punctuation turned into spaces
    (the check is done on both, so it holds whichever way one strips punctuation)."""
    low = text.lower()
    return _PUNCT.sub("", low).split(), _PUNCT.sub(" ", low).split()


def ngrams(tokens, n=NGRAM):
    return {tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)}


def read_prompts(path):
    out = []
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    out.append(json.loads(line)["prompt"])
    return out


class HeldOut:
    def __init__(self, eval_prompts, old_train_prompts):
        self.grams, self.exact = set(), set()
        for p in eval_prompts:
            for toks in token_variants(p):
                self.grams |= ngrams(toks)
                self.exact.add(" ".join(toks))
        for p in old_train_prompts:
            for toks in token_variants(p):
                self.exact.add(" ".join(toks))

    def hit(self, text):
        for toks in token_variants(text):
            if " ".join(toks) in self.exact or not self.grams.isdisjoint(ngrams(toks)):
                return True
        return False


# --------------------------------------------------------------------------------------------------
# Python standard library harvest (functions with docstrings, short real function bodies)
# --------------------------------------------------------------------------------------------------
SKIP_DIRS = {"test", "tests", "idlelib", "tkinter", "site-packages", "dist-packages", "lib2to3", "turtledemo",
             "ensurepip", "__pycache__", "pydoc_data", "venv", "__phello__"}
# old or deprecated modules (removed in Python 3.12 / 3.13) and ones with unusual code
SKIP_MODULES = {"distutils", "encodings", "asyncore", "asynchat", "smtpd", "msilib", "pydoc", "nntplib", "telnetlib",
                "cgi", "cgitb", "crypt", "imghdr", "sndhdr", "sunau", "aifc", "chunk", "uu", "xdrlib", "pipes",
                "mailcap", "audioop", "nis", "spwd", "ossaudiodev", "this", "antigravity", "imp"}
VERBS = set("""
accept acquire add adjust align allocate append apply assert attach build calculate call cancel capitalize
center change check choose clean clear close collapse collect combine compare compile complete compress
compute concatenate configure connect construct consume convert copy count create decode decompress define
delete determine disable discard dispatch display divide dump emit enable encode encrypt ensure enter escape
evaluate execute exit expand extend extract fetch fill filter find finish fix flatten flush format generate
get guess handle hash identify ignore indent initialize insert install interpret invoke iterate join keep
list load locate lock look make map mark match merge move normalize notify open parse pass perform pick
place pop prepare prepend print process produce provide push put quote raise read receive record reduce
register release reload remove rename render reorder repeat replace report represent reset resolve restore
retrieve return reverse rewrite round run save scan search select send separate serialize set show shuffle
skip sort split start stop store strip substitute swap take tell terminate test transform translate
truncate try turn unescape unlock unpack unquote unregister unwrap update validate verify wait walk warn
wrap write yield
""".split())


def third_person(verb):
    if verb.endswith(("s", "sh", "ch", "x", "z", "o")):
        return verb + "es"
    if verb.endswith("y") and verb[-2:-1] not in "aeiou":
        return verb[:-1] + "ies"
    return verb + "s"


def _signature(fn):
    a = fn.args
    pos = a.posonlyargs + a.args
    defaults = [None] * (len(pos) - len(a.defaults)) + list(a.defaults)
    parts = []
    for arg, d in zip(pos, defaults):
        if arg.arg in ("self", "cls") and not parts:
            continue
        parts.append(arg.arg if d is None else f"{arg.arg}={_short_default(d)}")
    if a.vararg:
        parts.append("*" + a.vararg.arg)
    elif a.kwonlyargs:
        parts.append("*")
    for arg, d in zip(a.kwonlyargs, a.kw_defaults):
        parts.append(arg.arg if d is None else f"{arg.arg}={_short_default(d)}")
    if a.kwarg:
        parts.append("**" + a.kwarg.arg)
    return ", ".join(parts)


def _short_default(node):
    s = ast.unparse(node)
    return s if len(s) <= 12 else "..."


def _summary(doc):
    para = doc.strip().split("\n\n")[0]
    para = " ".join(x.strip() for x in para.splitlines())
    m = re.match(r"(.+?[.!?])(\s|$)", para)
    s = m.group(1) if m else para
    s = s.strip()
    if not (15 <= len(s) <= 170) or not s.isascii() or not s[:1].isupper():
        return None
    if re.search(r"[=<>%*@#{}\[\];:]|__|--|\s-\s|\bself\b|\bcls\b", s) or len(s.split()) < 4:
        return None
    if re.match(r"^[\w.]+\s*\(", s) or s.endswith((":", ",")) or "XXX" in s or "`" in s or ">>>" in s:
        return None
    if re.search(r"\b(deprecated|internal|private|helper|override|overridden|subclass|backward|obsolete)\b", s, re.I):
        return None
    if s.endswith(("e.g.", "i.e.", "vs.", "Mr.", "Dr.")):
        return None
    if not s.endswith((".", "?", "!")):
        s += "."
    return s


class Func:
    __slots__ = ("module", "qual", "name", "sig", "summary", "src", "nlines", "cls")

    def __init__(self, **kw):
        for k, v in kw.items():
            setattr(self, k, v)


def _strip_docstring_lines(fn, lines):
    """Source lines of `fn` (a list of dedented lines starting at the def) without its docstring."""
    body0 = fn.body[0]
    if isinstance(body0, ast.Expr) and isinstance(getattr(body0, "value", None), ast.Constant) \
            and isinstance(body0.value.value, str):
        a, b = body0.lineno - fn.lineno, body0.end_lineno - fn.lineno
        return lines[:a] + lines[b + 1:]
    return lines


@functools.lru_cache(maxsize=1)
def harvest_stdlib():
    """(docstring functions, snippet functions) from the standard library on disk, in a fixed order."""
    root = sysconfig.get_paths()["stdlib"]
    doc_funcs, snippets = [], []
    for d, dirs, files in os.walk(root):
        dirs[:] = sorted(x for x in dirs if x not in SKIP_DIRS and not x.startswith(("config-", "lib-dynload")))
        rel = os.path.relpath(d, root)
        for f in sorted(files):
            if not f.endswith(".py") or f.startswith(("test_", "_")) and f != "__init__.py":
                continue
            path = os.path.join(d, f)
            try:
                with open(path, encoding="utf-8") as fh:
                    src = fh.read()
                tree = ast.parse(src)
            except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
                continue
            mod_parts = [] if rel == "." else rel.split(os.sep)
            if f != "__init__.py":
                mod_parts.append(f[:-3])
            module = ".".join(mod_parts)
            if not module or any(p.startswith("_") for p in mod_parts) or mod_parts[0] in SKIP_MODULES:
                continue
            src_lines = src.splitlines()
            _collect(tree, module, src_lines, doc_funcs, snippets)
    return tuple(doc_funcs), tuple(snippets)


def _collect(tree, module, src_lines, doc_funcs, snippets):
    scopes = [(None, n) for n in tree.body]
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            scopes += [(node.name, n) for n in node.body]
    for cls, fn in scopes:
        if not isinstance(fn, ast.FunctionDef) or fn.name.startswith("_") or fn.decorator_list:
            continue
        doc = ast.get_docstring(fn)
        summary = _summary(doc) if doc else None
        sig = _signature(fn)
        if len(sig) > 60:
            continue
        raw = src_lines[fn.lineno - 1:fn.end_lineno]
        lines = textwrap.dedent("\n".join(raw)).splitlines()
        if not lines or lines[0][:1].isspace():
            continue
        try:
            ast.parse("\n".join(lines))
        except SyntaxError:
            continue
        code_lines = [x for x in _strip_docstring_lines(fn, lines) if x.strip()]
        rec = Func(module=module, qual=(cls + "." + fn.name) if cls else fn.name, name=fn.name, sig=sig,
                   summary=summary, src="\n".join(lines), nlines=len(code_lines), cls=cls)
        if summary:
            doc_funcs.append(rec)
        ok_src = all(len(x) <= 95 and x.isascii() for x in lines) and "\t" not in rec.src
        n_stmts = sum(isinstance(x, ast.stmt) for x in ast.walk(fn)) - 1
        if ok_src and 5 <= len(lines) <= 25 and 4 <= len(code_lines) and n_stmts >= 3 and len(rec.src.split()) <= 110:
            snippets.append(rec)


def code_without_docstring(rec):
    tree = ast.parse(rec.src)
    fn = tree.body[0]
    lines = rec.src.splitlines()
    return "\n".join(_strip_docstring_lines(fn, lines))


class _Mutate(ast.NodeTransformer):
    SWAP_CMP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
                ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is}
    SWAP_BIN = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.FloorDiv, ast.FloorDiv: ast.Mult}

    def __init__(self, target):
        self.target, self.i = target, -1

    def _hit(self):
        self.i += 1
        return self.i == self.target

    def visit_Compare(self, node):
        self.generic_visit(node)
        if type(node.ops[0]) in self.SWAP_CMP and self._hit():
            node.ops[0] = self.SWAP_CMP[type(node.ops[0])]()
        return node

    def visit_BinOp(self, node):
        self.generic_visit(node)
        if type(node.op) in self.SWAP_BIN and self._hit():
            node.op = self.SWAP_BIN[type(node.op)]()
        return node

    def visit_BoolOp(self, node):
        self.generic_visit(node)
        if self._hit():
            node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        return node


def mutated_code(rec, rng):
    """The function without its docstring, with one comparison / operator / boolean swapped."""
    tree = ast.parse(code_without_docstring(rec))
    counter = _Mutate(-1)
    counter.visit(ast.parse(code_without_docstring(rec)))
    if counter.i < 0:
        return None
    _Mutate(rng.randrange(counter.i + 1)).visit(tree)
    code = ast.unparse(tree)
    if not (4 <= len(code.splitlines()) <= 25) or max(len(x) for x in code.splitlines()) > 100:
        return None
    return code


def py_block(code):
    return "```python\n" + code.rstrip() + "\n```"


# ==================================================================================================
# Shared vocabulary
# ==================================================================================================
NAMES = pairs("NAMES")
CURRENCIES = ["$", "$", "$", "€", "£"]
MONTHS = L("January February March April May June July August September October November December".replace(" ", "\n"))
DAYS = L("Monday Tuesday Wednesday Thursday Friday Saturday Sunday".replace(" ", "\n"))

AUDIENCES = words("AUDIENCES")
SIMPLE_AUDIENCES = ["a five-year-old", "an eight-year-old", "a twelve-year-old", "someone who is learning English",
                    "a complete beginner", "a high school student", "my grandmother", "a curious teenager"]
PERSONAS = words("PERSONAS")
EXTRAS_SHORT = ["", "", "", "", " Keep it short.", " Keep it brief.", " Use bullet points.", " Please be concise.",
                " Avoid jargon.", " Use plain language.", " Answer in under 150 words.", " Give a concrete example.",
                " Be practical.", " A numbered list would be great.", " Use simple words.", " Explain your reasoning.",
                " Please keep it to one paragraph.", " Answer in three or four sentences."]
LIST_COUNTS = [3, 3, 4, 5, 5, 5, 6, 7, 8, 10]


def count_word(rng):
    k = rng.choice(LIST_COUNTS)
    return str(k) if rng.random() < 0.4 else num_word(k)


# ==================================================================================================
# Chat / instruction prompts
# ==================================================================================================
CONCEPTS = words("CONCEPTS")
EXPLAIN_T = words("EXPLAIN_T")

HOWTO = words("HOWTO")
HOWTO_T = words("HOWTO_T")

COMPARE = pairs("COMPARE")
COMPARE_T = words("COMPARE_T")

TIPS = words("TIPS")
TIPS_T = words("TIPS_T")

CREATIVE_SUBJECTS = words("CREATIVE_SUBJECTS")
GENRES = ["mystery", "science-fiction", "fantasy", "funny", "heartwarming", "spooky", "historical", "adventure",
          "bittersweet", "fairy-tale"]
TONES = ["hopeful", "melancholic", "playful", "calm", "nostalgic", "dramatic", "gentle", "humorous", "mysterious"]
DIALOGUE_PAIRS = words("DIALOGUE_PAIRS")
DIALOGUE_TOPICS = ["", "", "", " about the meaning of home", " about whether pineapple belongs on pizza",
                   " about a missing sandwich", " about the weather", " about a big decision", " about growing up",
                   " about what makes a good friend", " about the future", " about a strange noise in the night"]
CREATIVE_T = words("CREATIVE_T")
STORY_OPENERS = words("STORY_OPENERS")

MESSAGE_SITUATIONS = pairs("MESSAGE_SITUATIONS")
MESSAGE_FORMS = {"f": ["an email", "an email", "a polite email", "a formal letter", "a brief email", "a short message",
                       "a professional email"],
                 "i": ["a text message", "a short message", "an email", "a WhatsApp message", "a card message",
                       "a warm note", "a casual email"]}
MESSAGE_TONES = ["warm but professional", "friendly", "polite and firm", "short and to the point", "apologetic",
                 "cheerful", "respectful", "light-hearted", "sincere", "formal"]
MESSAGE_T = words("MESSAGE_T")

# --- passages built from templates, to summarize or rewrite ---------------------------------------
TOWNS = ["Millbrook", "Ashford", "Riverton", "Eastwick", "Port Allen", "Kingsley", "Oakridge", "Lower Denham",
         "Fairhaven", "Bramley", "Westmoor", "Clearwater", "Hollins Bay", "Stonebridge"]
NEWS = pairs("NEWS")
NEWS_T = ("{town} council voted on {day} to {dec}. The plan, which will cost about {cost}, is meant to {eff}. "
          "Supporters say {sup}. Critics argue that {crit}. Work is due to start in {month}.")
PRODUCTS = pairs("PRODUCTS")
REVIEW_AGO = ["two weeks ago", "about a month ago", "three months ago", "last spring", "six months ago", "in January"]
REVIEW_VERDICT = words("REVIEW_VERDICT")
ANECDOTES = pairs("ANECDOTES")
ANECDOTE_REFLECT = ["", "", "Looking back, it was a good lesson in patience.", "I still laugh about it.",
                    "It taught me that plans rarely go the way you expect.", "I would do it all again."]
NOTES_ITEMS = words("NOTES_ITEMS")
SCIENCE_BLURBS = words("SCIENCE_BLURBS")
PASSAGE_TASKS = {
    "news": L("""
Summarize this news item in one sentence:
Write a headline for this short article:
Rewrite this paragraph so a ten-year-old could follow it:
List the key facts from this passage as bullet points:
Turn this into a short social media post of under 280 characters:
Write two questions a local reporter could ask the council about this:
What are the main arguments for and against the plan described here?
"""),
    "review": L("""
Summarize this product review in one sentence:
Rewrite this review in a more formal tone:
Turn this review into a list of pros and cons:
Rewrite this review so it is more concise:
Based on this review, who would this product suit and who should avoid it?
Write a polite reply from the company to this review:
"""),
    "anecdote": L("""
Summarize this story in two sentences:
Rewrite this in the third person:
Rewrite this short story as a funny social media post:
Give this anecdote a catchy title and a one-line summary:
Rewrite this paragraph in a more vivid, descriptive style:
Turn this into a short poem:
"""),
    "notes": L("""
Turn these meeting notes into a clear, friendly email to the team:
Rewrite these notes as a short status update for senior management:
Group these meeting notes into decisions, action items and open questions:
Summarize these notes in three sentences:
"""),
    "science": L("""
Summarize this passage in one sentence:
Write three quiz questions, with answers, based on this passage:
Rewrite this paragraph for a seven-year-old:
Turn this passage into a list of key points:
Explain the passage below in your own words, adding one everyday example:
Write a catchy title for this paragraph and a one-sentence hook:
"""),
}
TYPOS = [("their", "there"), ("it's", "its"), ("received", "recieved"), ("which", "wich"), ("because", "becuase"),
         ("a lot", "alot"), ("definitely", "definately"), ("until", "untill"), ("were", "where"), ("than", "then"),
         ("I ", "i "), ("the ", "teh "), ("friends", "freinds"), ("weird", "wierd"), ("separate", "seperate")]

DEFINE_WORDS = words("DEFINE_WORDS")
IDIOMS = words("IDIOMS")
DEFINE_T = words("DEFINE_T")
IDIOM_T = words("IDIOM_T")

PROSCONS = words("PROSCONS")
PROSCONS_T = words("PROSCONS_T")
PROSCONS_WHO = ["families", "students", "small businesses", "retirees", "young professionals", "people on a budget",
                "the environment", "people living alone"]

DESTINATIONS = words("DESTINATIONS")
TRAVELLERS = ["a couple", "a family with two young kids", "a solo traveller", "a group of friends in their twenties",
              "two retirees who love museums", "a family with teenagers", "a couple on their honeymoon",
              "a student backpacker", "someone who uses a wheelchair", "three friends who love food"]
TRIP_EXTRAS = ["", "", " on a modest budget", " on a tight budget", " with a generous budget", " who love hiking",
               " interested in history", " who want a relaxed pace", " who don't drive", " who love street food"]
TRIP_T = words("TRIP_T")
DIETS = ["is vegan", "wants to eat more protein", "avoids gluten", "is trying to lose weight", "has a nut allergy",
         "only has time to cook on weekends", "is training for a marathon", "doesn't like spicy food",
         "is pregnant", "has type 2 diabetes", "eats fish but no meat", "is on a student budget",
         "wants to eat less processed food", "is lactose intolerant", "has a very small kitchen"]
MEAL_WHO = ["someone", "a busy nurse", "a teenager", "my dad", "a retired man", "a student", "an office worker",
            "my grandmother", "a keen cyclist"]
INGREDIENTS = words("INGREDIENTS")
DISHES = words("DISHES")
WORKOUT_GOALS = ["build strength", "lose some weight", "run a 5k without stopping", "improve flexibility",
                 "get better at push-ups", "improve my posture", "build endurance for hiking", "tone up",
                 "get back into shape after having a baby", "improve balance", "prepare for a skiing trip",
                 "increase my energy levels"]
WORKOUT_LEVELS = ["a complete beginner", "someone who exercises occasionally", "a fairly fit person",
                  "a 55-year-old", "a busy parent", "someone with bad knees"]
EQUIPMENT = ["no equipment", "a pair of dumbbells", "resistance bands", "a full gym", "a kettlebell",
             "just a yoga mat"]
SKILLS = words("SKILLS")
EVENTS = ["a birthday party for a seven-year-old", "a small wedding for fifty guests", "a retirement party",
          "a neighbourhood street party", "a baby shower", "a team offsite for twelve people", "a charity bake sale",
          "a games night for ten friends", "a graduation party", "a school reunion", "an outdoor movie night",
          "a surprise fortieth birthday"]
PLAN_KINDS = ["trip", "trip", "trip", "meal", "meal", "cook", "cook", "recipe", "workout", "workout", "study", "budget",
              "event"]

QUESTIONS = words("QUESTIONS")
QUESTION_X = ["", "", "", " Keep it short.", " Explain it like I'm five.", " Give the scientific explanation.",
              " Please answer in a few sentences.", " I'd like a detailed answer.", " Use an analogy if you can."]
HIST_EVENTS = words("HIST_EVENTS")
HIST_T = words("HIST_T")

ADVICE = words("ADVICE")
ADVICE_T = ["{a} What should I do?", "{a} How should I handle this?", "{a} Any advice?",
            "{a} What would you do in my position?", "{a} How can I approach this calmly?",
            "Can I get some advice? {a}", "{a} Can you help me think it through?",
            "{a} What are my options?"]


def fill(template, **kw):
    """str.format, with {X} → capitalised {x} when asked for."""
    out = template
    for k, v in kw.items():
        out = out.replace("{" + k + "}", str(v)).replace("{" + k.upper() + "}", cap(str(v)))
    return out


def gen_explain(rng, _):
    c = rng.choice(CONCEPTS)
    t = rng.choice(EXPLAIN_T)
    return fill(t, c=c, aud=rng.choice(AUDIENCES), x=rng.choice(EXTRAS_SHORT)), ("explain", c)


def gen_howto(rng, _):
    task = rng.choice(HOWTO)
    t = rng.choice(HOWTO_T)
    p = rng.choice(PERSONAS)
    if t.startswith("As {p}"):
        p = rng.choice([x for x in PERSONAS if x.startswith(("a ", "an "))])
    return fill(t, t=task, p=p, k=rng.choice(["three", "five", "five", "seven", "4", "6"]),
                x=rng.choice(EXTRAS_SHORT)), ("howto", task)


def gen_compare(rng, _):
    a, b = rng.choice(COMPARE)
    if rng.random() < 0.5 and " " not in a + b and "in " not in b:
        a, b = b, a
    t = rng.choice(COMPARE_T)
    return fill(t, a=a, b=b, aud=rng.choice(AUDIENCES), x=rng.choice(EXTRAS_SHORT)), ("compare", a, b)


def gen_tips(rng, _):
    topic = rng.choice(TIPS)
    t = rng.choice(TIPS_T)
    return fill(t, t=topic, k=count_word(rng), x=rng.choice(EXTRAS_SHORT)), ("tips", topic)


def gen_creative(rng, _):
    s = rng.choice(CREATIVE_SUBJECTS)
    t = rng.choice(CREATIVE_T)
    pair = rng.choice(DIALOGUE_PAIRS)
    pair2 = rng.choice([f"{s}", "a lighthouse keeper", "a retired astronaut", "a house cat", "an old oak tree",
                        "a nervous bride", "a soldier in 1918", "a shopkeeper on the last day before closing",
                        "a teenager on their first day at a new school", "the last dodo", "a ship's cook",
                        "a city pigeon", "a marathon runner at mile twenty"])
    if "{pair2}" in t and pair2 == s and not s.startswith("a "):
        pair2 = "someone who remembers " + s
    core = ("creative", s) if "{s}" in t else ("creative", pair) if "{pair}" in t else ("creative", t, pair2)
    opener = rng.choice(STORY_OPENERS)
    if "{opener}" in t:
        core = ("creative", opener, t)
    return fill(t, s=s, tone=rng.choice(TONES), genre=rng.choice(GENRES), w=rng.choice([100, 150, 200, 250, 300, 400]),
                pair=pair, dt=rng.choice(DIALOGUE_TOPICS), age=rng.randint(3, 9), pair2=pair2, opener=opener), core


def gen_message(rng, _):
    kind, sit = rng.choice(MESSAGE_SITUATIONS)
    t = rng.choice(MESSAGE_T)
    return fill(t, form=rng.choice(MESSAGE_FORMS[kind]), sit=sit, tone=rng.choice(MESSAGE_TONES),
                w=rng.choice([80, 100, 120, 150, 200]), x=rng.choice(["", "", " Keep it under 100 words.",
                                                                  " Keep it polite.", " Don't make it too long."])), ("msg", sit)


def _add_typos(rng, text):
    cands = [(a, b) for a, b in TYPOS if a in text]
    rng.shuffle(cands)
    for a, b in cands[:rng.randint(3, 5)]:
        i = text.find(a)
        text = text[:i] + b + text[i + len(a):]
    if rng.random() < 0.5:
        text = text.replace(", ", " ", 1)
    return text


def gen_passage(rng, _):
    kind = rng.choice(["news", "news", "review", "review", "anecdote", "anecdote", "notes", "science", "grammar"])
    fix = kind == "grammar"
    if fix:
        kind = rng.choice(["news", "review", "anecdote"])
    cur = rng.choice(CURRENCIES)
    if kind == "news":
        dec, eff, sup, crit = rng.choice(NEWS)
        cost = rng.choice([f"{cur}{rng.randint(2, 95) * 10},000", f"{cur}{rng.randint(11, 49) / 10:.1f} million"])
        text = fill(NEWS_T, town=rng.choice(TOWNS), day=rng.choice(DAYS), dec=dec, cost=cost, eff=eff, sup=sup,
                    crit=crit, month=rng.choice(MONTHS))
        core = dec
    elif kind == "review":
        prod, p1, p2, neg = rng.choice(PRODUCTS)
        pos = [p1, p2]
        rng.shuffle(pos)
        text = (f"I bought {prod} {rng.choice(REVIEW_AGO)}. {pos[0]} {pos[1]} On the downside, {neg}. "
                f"{rng.choice(REVIEW_VERDICT)}")
        core = prod
    elif kind == "anecdote":
        act, comp, res = rng.choice(ANECDOTES)
        when = rng.choice([f"Last {rng.choice(DAYS)}", "Last weekend", f"In {rng.choice(MONTHS)}", "A few years ago",
                           "Last summer"])
        text = f"{when}, I {act}. Unfortunately, {comp}. In the end, {res}. {rng.choice(ANECDOTE_REFLECT)}".strip()
        core = act
    elif kind == "notes":
        items = rng.sample(NOTES_ITEMS, rng.randint(4, 6))
        m1, m2 = rng.sample(MONTHS, 2)
        d1, d2 = rng.sample(DAYS[:5], 2)
        text = "\n".join("- " + fill(x, m1=m1, m2=m2, cur=cur, n1=rng.randint(12, 480), name=rng.choice(NAMES)[0],
                                     day=d1, day2=d2, p=rng.randint(8, 45), h=rng.randint(1, 5)) for x in items)
        core = tuple(sorted(items))
    else:
        text = rng.choice(SCIENCE_BLURBS)
        core = text[:40]
    if fix:
        text = _add_typos(rng, text)
        task = rng.choice(["Correct the spelling and grammar in this text:", "Proofread this paragraph and fix any "
                           "mistakes:", "Fix the errors in the following text and list what you changed:"])
    else:
        task = rng.choice(PASSAGE_TASKS[kind])
    sep = "\n\n" if rng.random() < 0.7 else "\n"
    if rng.random() < 0.3 and not fix:
        return f"{text}{sep}{task.rstrip(':')}.".replace("?.", "?").replace(" below", ""), ("passage", kind, core, task)
    return f"{task}{sep}{text}", ("passage", kind, core, task, fix)


def gen_define(rng, _):
    if rng.random() < 0.3:
        i = rng.choice(IDIOMS)
        return rng.choice(IDIOM_T).replace("{i}", i), ("idiom", i)
    w = rng.choice(DEFINE_WORDS)
    return fill(rng.choice(DEFINE_T), w=w, aud=rng.choice(SIMPLE_AUDIENCES)), ("define", w)


def gen_proscons(rng, _):
    s = rng.choice(PROSCONS)
    return fill(rng.choice(PROSCONS_T), s=s, who=rng.choice(PROSCONS_WHO), x=rng.choice(EXTRAS_SHORT)), ("pc", s)


def gen_plan(rng, _):
    kind = rng.choice(PLAN_KINDS)
    cur = rng.choice(CURRENCIES)
    if kind == "trip":
        dest = rng.choice(DESTINATIONS)
        who = rng.choice(TRAVELLERS)
        who2 = {"a couple": "my partner", "a solo traveller": "nobody else, just me"}.get(who, who)
        if who2.startswith("a "):
            who2 = "my " + who2[2:].replace("family with", "family, with")
        return fill(rng.choice(TRIP_T), d=rng.randint(2, 10), dest=dest, who=who, who2=who2,
                    ex=rng.choice(TRIP_EXTRAS), month=rng.choice(MONTHS)), ("trip", dest)
    if kind == "meal":
        diet, who = rng.choice(DIETS), rng.choice(MEAL_WHO)
        t = rng.choice([f"Create a {rng.choice(['three', 'five', 'seven'])}-day meal plan for {who} who {diet}.",
                        f"Plan a week of dinners for {who} who {diet}. Include a shopping list.",
                        f"Suggest breakfast, lunch and dinner ideas for {who} who {diet}.",
                        f"What would a healthy day of eating look like for {who} who {diet}?",
                        f"I'm cooking for {who} who {diet}. Can you suggest a dinner menu for a special occasion?"])
        return t, ("meal", diet, who)
    if kind == "cook":
        ing = rng.sample(INGREDIENTS, rng.randint(2, 4))
        lst = ", ".join(ing[:-1]) + " and " + ing[-1]
        t = rng.choice([f"What can I cook with {lst}?", f"I only have {lst} in the fridge. Any dinner ideas?",
                        f"Suggest a quick recipe using {lst}.",
                        f"Give me two meal ideas that use {lst}, with rough cooking times."])
        return t, ("cook", tuple(sorted(ing)))
    if kind == "recipe":
        dish = rng.choice(DISHES)
        t = rng.choice([f"Give me a simple recipe for {dish}.", f"How do I make {dish} from scratch?",
                        f"What's an easy way to make {dish} for {rng.randint(2, 8)} people?",
                        f"Write a recipe for {dish} with a list of ingredients and numbered steps.",
                        f"I've never cooked {dish} before. Walk me through it."])
        return t, ("recipe", dish)
    if kind == "workout":
        goal, lvl, eq = rng.choice(WORKOUT_GOALS), rng.choice(WORKOUT_LEVELS), rng.choice(EQUIPMENT)
        days = rng.randint(2, 5)
        t = rng.choice([f"Design a {rng.randint(4, 12)}-week workout plan for {lvl} who wants to {goal}, "
                        f"training {days} days a week with {eq}.",
                        f"I want to {goal}. I'm {lvl} and I have {eq}. Can you make me a weekly routine?",
                        f"Create a {days}-day-a-week exercise plan to {goal}, using {eq}."])
        return t, ("workout", goal, lvl)
    if kind == "study":
        sk = rng.choice(SKILLS)
        t = rng.choice([f"Make a {rng.randint(4, 16)}-week study plan for learning {sk}.",
                        f"I have {rng.choice(['30 minutes', 'an hour', 'two hours'])} a day to learn {sk}. "
                        f"How should I structure my practice?",
                        f"What's a good roadmap for learning {sk} from scratch?"])
        return t, ("study", sk)
    if kind == "budget":
        inc = rng.randint(18, 60) * 100
        rent = int(inc * rng.uniform(0.25, 0.45) / 10) * 10
        t = rng.choice([f"Help me make a monthly budget. I take home {cur}{inc:,} a month and my rent is "
                        f"{cur}{rent:,}. I'd like to save at least {rng.randint(5, 20)}% of my income.",
                        f"I earn {cur}{inc:,} a month after tax and spend {cur}{rent:,} on rent. How should I split the "
                        f"rest between bills, food, fun and savings?"])
        return t, ("budget", inc, rent)
    ev = rng.choice(EVENTS)
    t = rng.choice([f"Help me plan {ev}.", f"Make a checklist for organising {ev}.",
                    f"I'm organising {ev} with a budget of {cur}{rng.randint(2, 30) * 50}. What should I plan for?"])
    return t, ("event", ev)


def gen_question(rng, _):
    if rng.random() < 0.3:
        e = rng.choice(HIST_EVENTS)
        return fill(rng.choice(HIST_T), e=e, aud=rng.choice(SIMPLE_AUDIENCES)), ("hist", e)
    q = rng.choice(QUESTIONS)
    return q + rng.choice(QUESTION_X), ("q", q)


def gen_advice(rng, _):
    a = rng.choice(ADVICE)
    t = rng.choice(ADVICE_T)
    return t.replace("{a}", a), ("advice", a)


CHAT_GENS = [("explain", 14, gen_explain), ("howto", 12, gen_howto), ("compare", 7, gen_compare), ("tips", 9, gen_tips),
             ("creative", 11, gen_creative), ("message", 9, gen_message), ("passage", 8, gen_passage),
             ("define", 5, gen_define), ("proscons", 5, gen_proscons), ("plan", 9, gen_plan),
             ("question", 7, gen_question), ("advice", 4, gen_advice)]


# ==================================================================================================
# Coding prompts
# ==================================================================================================
PY_FUNCS = pairs("PY_FUNCS")
PY_FUNC_T = words("PY_FUNC_T")
PY_FUNC_X = ["", "", "", " Handle empty input sensibly.", " Raise a ValueError for invalid arguments.",
             " Use only the standard library.", " Keep it readable rather than clever.", " Add type hints.",
             " Include a docstring with an example."]
PY_CLASSES = pairs("PY_CLASSES")
PY_CLASS_T = words("PY_CLASS_T")
PY_TOPICS = words("PY_TOPICS")
PY_TOPIC_T = words("PY_TOPIC_T")
CS_QUESTIONS = words("CS_QUESTIONS")
EXPLAIN_SNIPPETS = [x.strip() for x in """
print([x * x for x in range(10) if x % 2 == 0])
|
def f(s):\n    return s == s[::-1]
|
from collections import Counter\nwords = open("book.txt").read().lower().split()\nprint(Counter(words).most_common(5))
|
def outer():\n    count = 0\n    def inner():\n        nonlocal count\n        count += 1\n        return count\n    return inner
|
result = {k: v for k, v in sorted(scores.items(), key=lambda kv: -kv[1])[:3]}
|
with open("data.txt") as f:\n    lines = [line.strip() for line in f if line.strip()]
|
def fib():\n    a, b = 0, 1\n    while True:\n        yield a\n        a, b = b, a + b
|
import functools\n\n@functools.lru_cache(maxsize=None)\ndef ways(n):\n    if n < 0:\n        return 0\n    if n == 0:\n        return 1\n    return ways(n - 1) + ways(n - 2) + ways(n - 3)
|
matrix = [[1, 2, 3], [4, 5, 6]]\nprint(list(zip(*matrix)))
|
try:\n    value = int(input("Number: "))\nexcept ValueError:\n    print("Not a number")\nelse:\n    print(value * 2)\nfinally:\n    print("Done")
|
def flatten(xs):\n    for x in xs:\n        if isinstance(x, list):\n            yield from flatten(x)\n        else:\n            yield x
|
import re\nprint(re.findall(r"\\b[A-Z][a-z]+\\b", text))
|
class Point:\n    __slots__ = ("x", "y")\n\n    def __init__(self, x, y):\n        self.x = x\n        self.y = y
|
data = sorted(people, key=lambda p: (p["age"], p["name"]))
|
from itertools import groupby\nfor key, group in groupby(sorted(words, key=len), key=len):\n    print(key, list(group))
|
def debounce(fn, wait):\n    timer = None\n    def wrapper(*args):\n        nonlocal timer\n        if timer:\n            timer.cancel()\n        timer = threading.Timer(wait, fn, args)\n        timer.start()\n    return wrapper
|
seen = set()\nunique = [x for x in items if not (x in seen or seen.add(x))]
|
import json\nfrom pathlib import Path\nconfig = json.loads(Path("config.json").read_text())\nport = config.get("port", 8080)
|
def chunks(lst, n):\n    return [lst[i:i + n] for i in range(0, len(lst), n)]
|
total = sum(price * qty for price, qty in cart.values())
|
from dataclasses import dataclass, field\n\n@dataclass\nclass Order:\n    id: int\n    items: list = field(default_factory=list)\n\n    def total(self):\n        return sum(i.price for i in self.items)
|
a, b = b, a
|
def is_prime(n):\n    return n > 1 and all(n % d for d in range(2, int(n ** 0.5) + 1))
|
counts = {}\nfor ch in text:\n    counts[ch] = counts.get(ch, 0) + 1
""".split("\n|\n")]
BUGGY = [
    ("return the largest number in a list", "def largest(nums):\n    best = 0\n    for n in nums:\n        if n > best:\n            best = n\n    return best"),
    ("return the average of a list of numbers", "def mean(values):\n    total = 0\n    for v in values:\n        total += v\n    return total / len(values) - 1"),
    ("count how many times each word appears", "def count_words(text):\n    counts = {}\n    for word in text.split():\n        counts[word] = 1\n    return counts"),
    ("reverse a string", "def reverse(s):\n    out = \"\"\n    for i in range(len(s)):\n        out += s[len(s) - i]\n    return out"),
    ("add an item to a list and return the list", "def add_item(item, items=[]):\n    items.append(item)\n    return items"),
    ("check whether a number is even", "def is_even(n):\n    if n % 2 == 1:\n        return True\n    return False"),
    ("sum the numbers from 1 to n", "def total(n):\n    s = 0\n    for i in range(n):\n        s += i\n    return s"),
    ("remove all negative numbers from a list", "def remove_negatives(nums):\n    for n in nums:\n        if n < 0:\n            nums.remove(n)\n    return nums"),
    ("return the factorial of n", "def factorial(n):\n    if n == 0:\n        return 0\n    return n * factorial(n - 1)"),
    ("do a binary search for a target in a sorted list", "def search(xs, target):\n    lo, hi = 0, len(xs)\n    while lo < hi:\n        mid = (lo + hi) // 2\n        if xs[mid] < target:\n            lo = mid\n        else:\n            hi = mid\n    return lo"),
    ("read a file and return its lines without newlines", "def read_lines(path):\n    f = open(path)\n    lines = f.readlines()\n    return [l.strip for l in lines]"),
    ("merge two dictionaries without changing either of them", "def merge(a, b):\n    result = a\n    result.update(b)\n    return result"),
    ("compute compound interest over several years", "def grow(balance, rate, years):\n    for year in range(years):\n        balance = balance * rate\n    return balance"),
    ("capitalize the first letter of each word", "def title_case(s):\n    words = s.split()\n    for w in words:\n        w = w[0].upper() + w[1:]\n    return \" \".join(words)"),
    ("return the second largest value in a list", "def second_largest(nums):\n    nums.sort()\n    return nums[1]"),
    ("check whether a year is a leap year", "def is_leap(year):\n    return year % 4 == 0 and year % 100 != 0"),
    ("return the last n items of a list", "def last_n(items, n):\n    return items[-n:]"),
    ("convert Celsius to Fahrenheit", "def to_f(c):\n    return c * 9 / 5 + 32 if c else None"),
    ("count the vowels in a string", "def vowels(s):\n    return sum(1 for ch in s if ch in \"aeiou\")"),
    ("create a 3x3 grid of zeros that can be edited cell by cell", "grid = [[0] * 3] * 3\ngrid[0][0] = 1\nprint(grid)"),
    ("print the numbers 1 to 10", "i = 1\nwhile i < 10:\n    print(i)\n    i += 1"),
    ("make a list of functions that each return their own index", "funcs = [lambda: i for i in range(5)]\nprint([f() for f in funcs])"),
    ("check whether all the items in a list are positive", "def all_positive(xs):\n    for x in xs:\n        if x > 0:\n            return True\n    return False"),
    ("compare two floats from a calculation", "def is_point_three(x):\n    return x == 0.3\n\nprint(is_point_three(0.1 + 0.2))"),
    ("split a bill evenly and round each share to cents", "def share(total, people):\n    return round(total / people)"),
    ("return the index of the first vowel in a word", "def first_vowel(word):\n    for i in range(len(word)):\n        if word[i] in \"aeiou\":\n            return i\n        else:\n            return -1"),
    ("strip whitespace from every line of a file in place", "with open(\"notes.txt\") as f:\n    for line in f:\n        line = line.strip()\n        f.write(line)"),
    ("return a dictionary mapping each letter to its position in the alphabet", "import string\n\ndef positions():\n    return {c: i for i, c in enumerate(string.ascii_lowercase)}"),
    ("count down from n to 1", "def countdown(n):\n    while n > 0:\n        print(n)\n    n -= 1"),
    ("sort a list of names case-insensitively", "names = [\"bob\", \"Alice\", \"carol\"]\nnames = names.sort(key=str.lower)\nprint(names)"),
    ("calculate the length of the hypotenuse", "import math\n\ndef hypotenuse(a, b):\n    return math.sqrt(a ** 2 + b ^ 2)"),
    ("check whether a key exists in a dictionary", "def has_key(d, key):\n    return key in d.values()"),
    ("return the words longer than five letters", "def long_words(text):\n    return [w for w in text.split() if len(w) > 5 or w]"),
    ("keep a running total across calls", "total = 0\n\ndef add(x):\n    total += x\n    return total"),
    ("parse an integer from user input, defaulting to 0", "def parse(s):\n    try:\n        return int(s)\n    except:\n        pass"),
]
BUGGY_T = words("BUGGY_T")
JS_TASKS = words("JS_TASKS")
JS_T = words("JS_T")
SQL_SCHEMAS = [
    ("employees(id, name, department_id, salary, hire_date) and departments(id, name)",
     L("""
list each department with its average salary, highest first
find the employees who earn more than the average salary of their department
count how many people were hired in each year
find departments that have no employees
show the three highest-paid employees in every department
find employees hired in the last 90 days
""")),
    ("customers(id, name, country), orders(id, customer_id, order_date, total)",
     L("""
find customers who have never placed an order
compute total revenue per country for 2023
find each customer's first order date
list the customers who spent more than 1000 in total, with their total
compute the month-by-month number of orders and the running total
find the average number of orders per customer
""")),
    ("students(id, name), courses(id, title), enrollments(student_id, course_id, grade)",
     L("""
list each course with the number of enrolled students
find students enrolled in more than three courses
find the top student in each course by grade
compute the average grade per student and sort from highest to lowest
find courses where nobody has a grade below 50
""")),
    ("books(id, title, author_id, year), authors(id, name), loans(book_id, member_id, loan_date, return_date)",
     L("""
find the books that are currently on loan
list authors with the number of their books that have ever been borrowed
find the most borrowed book in each year
find members who have kept a book for more than 30 days
""")),
    ("products(id, name, category, price), order_items(order_id, product_id, quantity)",
     L("""
find the best-selling product in each category by quantity
list products that have never been ordered
compute the revenue of each category
find the five most expensive products in each category
""")),
    ("page_views(user_id, url, viewed_at)",
     L("""
count daily active users for the last 30 days
find the ten most visited pages this week
find users who visited on at least five different days
compute how long each user's session lasted, assuming a session ends after 30 minutes of inactivity
""")),
]
SQL_T = words("SQL_T")
SQL_CONCEPTS = words("SQL_CONCEPTS")
BASH_TASKS = words("BASH_TASKS")
BASH_T = words("BASH_T")
BASH_CMDS = words("BASH_CMDS")
BASH_CMD_T = ["Explain this bash command: `{c}`", "What does `{c}` do? Break it down piece by piece.",
              "Can you explain what this shell command does, and whether it is safe to run?\n\n{c}"]
C_TASKS = words("C_TASKS")
C_SNIPPETS = [
    "int sum(int *a, int n) {\n    int s = 0;\n    for (int i = 0; i < n; i++)\n        s += a[i];\n    return s;\n}",
    "char *dup(const char *s) {\n    char *p = malloc(strlen(s) + 1);\n    if (p)\n        strcpy(p, s);\n    return p;\n}",
    "unsigned long hash(const char *s) {\n    unsigned long h = 5381;\n    int c;\n    while ((c = *s++))\n        h = h * 33 + c;\n    return h;\n}",
    "void swap(int *a, int *b) {\n    int t = *a;\n    *a = *b;\n    *b = t;\n}",
    "int count = 0;\nwhile (n) {\n    n &= n - 1;\n    count++;\n}",
]
C_BUGGY = [
    "int *make_array(int n) {\n    int arr[n];\n    for (int i = 0; i < n; i++)\n        arr[i] = i;\n    return arr;\n}",
    "char buf[8];\nstrcpy(buf, \"hello world\");\nprintf(\"%s\\n\", buf);",
    "for (int i = 0; i <= 10; i++) {\n    values[i] = i * i;   /* values has 10 elements */\n}",
    "char *s = \"hello\";\ns[0] = 'H';\nprintf(\"%s\\n\", s);",
    "int *p = malloc(sizeof(int) * 10);\nfree(p);\np[0] = 42;",
]
TEST_T = words("TEST_T")


def _split_sig(sig):
    return sig.split("(", 1)[0]


def gen_py_func(rng, _):
    sig, beh = rng.choice(PY_FUNCS)
    t = rng.choice(PY_FUNC_T)
    return fill(t, sig=sig, name=_split_sig(sig), beh=beh, x=rng.choice(PY_FUNC_X)) + \
        (rng.choice(PY_FUNC_X) if "{x}" not in t and "third-party" not in t and rng.random() < 0.4 else ""), ("pyf", sig)


def gen_py_class(rng, _):
    name, desc = rng.choice(PY_CLASSES)
    return fill(rng.choice(PY_CLASS_T), name=name, desc=desc), ("pyc", name)


def _behaviour(summary):
    """'Return the foo.' -> 'returns the foo' (None when the first word isn't a known imperative verb)."""
    first, _, rest = summary.rstrip(".!?").partition(" ")
    w = first.lower()
    rest = re.sub(r"\b(and|or|then) ([a-z]+)\b(?= (?:the|a|an|it|its|them|their|all|any|this|that|each|true|false|none|"
                  r"to|in|into|from|with|as)\b)",
                  lambda m: f"{m.group(1)} {third_person(m.group(2)) if m.group(2) in VERBS else m.group(2)}", rest)
    if w in VERBS:
        return f"{third_person(w)} {rest}".strip()
    if w.endswith("s") and (w[:-1] in VERBS or (w.endswith("es") and w[:-2] in VERBS)):
        return f"{w} {rest}".strip()
    return None


def gen_stdlib_doc(rng, corpus):
    f = rng.choice(corpus[0])
    sig = f"{f.name}({f.sig})"
    beh = _behaviour(f.summary)
    if beh is None:
        t = rng.choice([f'Write a Python function `{sig}` based on this docstring: "{f.summary}"',
                        f'Here is the first line of a docstring: "{f.summary}" Implement a Python function `{sig}` '
                        f'that matches it.',
                        f'Implement `{sig}` in Python. Its documentation says: "{f.summary}"'])
    elif f.cls and rng.random() < 0.6:
        t = rng.choice([f"Write a method `{sig}` for {a_an('`' + f.cls)}` class that {beh}.",
                        f"In a Python class called `{f.cls}`, implement the method `{sig}`, which {beh}.",
                        f"Add a method `{sig}` to {a_an('`' + f.cls)}` class. It {beh}."])
    else:
        t = rng.choice([f"Write a Python function `{sig}` that {beh}.",
                        f"Write a Python function `{sig}` that {beh}.",
                        f"Implement `{sig}` in Python: it {beh}.",
                        f"Re-implement `{f.module}.{f.qual}` from scratch as a function `{sig}` that {beh}.",
                        f"Write a Python function called `{f.name}` that {beh}. Its signature should be `{sig}`.",
                        f"Without importing `{f.module}`, write a function `{sig}` that {beh}.",
                        f"Write a function `{sig}` that {beh}. Add a docstring and a short example.",
                        f"I need `{sig}`: a Python function that {beh}. Keep it simple and readable."])
    return t, ("stdoc", f.module, f.qual)


def gen_stdlib_explain(rng, corpus):
    f = rng.choice(corpus[1])
    kind = rng.randrange(11)
    bare = code_without_docstring(f)
    short_doc = len(f.src.splitlines()) - len(bare.splitlines()) <= 4
    code = f.src if short_doc and rng.random() < 0.5 and kind != 8 else bare
    block = py_block(code)
    t = [f"What does this Python function do?\n{block}",
         f"Explain the following function from the `{f.module}` module, step by step:\n{block}",
         f"Walk me through this code line by line:\n\n{block}",
         f"Here is a function from Python's standard library (`{f.module}`). Describe what it does and when you "
         f"might use it.\n{block}",
         f"Summarize the purpose of this code in two or three sentences:\n{block}",
         f"Can you explain this Python snippet to a beginner?\n\n{block}",
         f"Add comments to this Python function explaining each step:\n{block}",
         f"How could this function be made easier to read? Suggest a refactored version.\n{block}",
         f"Write a docstring for this function:\n{block}",
         f"What are the inputs and outputs of this function, and what edge cases does it handle?\n{block}",
         f"{block}\nWhat does this function do, and what would it return for a typical input?"][kind]
    return t, ("stdex", f.module, f.qual)


def gen_explain_snippet(rng, _):
    code = rng.choice(EXPLAIN_SNIPPETS)
    t = rng.choice(["What does this Python code do?\n\n{b}", "Explain this Python snippet:\n{b}",
                    "Can you explain, line by line, what happens here?\n{b}",
                    "I found this in a codebase and don't understand it. What does it do?\n{b}",
                    "{b}\nWhat is this code doing, and is there a clearer way to write it?",
                    "Explain what the following code prints or returns, and why:\n{b}"])
    return t.replace("{b}", py_block(code)), ("snip", code)


def gen_bug(rng, corpus):
    if rng.random() < 0.5:
        purpose, code = rng.choice(BUGGY)
        t = rng.choice(BUGGY_T).replace("{p}", purpose)
        return f"{t}\n{py_block(code)}" if rng.random() < 0.7 else f"{py_block(code)}\n{t}", ("bug", code)
    f = rng.choice(corpus[1])
    code = mutated_code(f, rng)
    if code is None:
        return None
    beh = _behaviour(f.summary) if f.summary else None
    if beh:
        imperative = f.summary.split(" ", 1)[0].lower() in VERBS
        t = rng.choice([f"This function should {f.summary[:1].lower() + f.summary[1:-1]}, but one operator "
                        f"in it has been changed and now it has a bug. Find and fix it." if imperative else
                        f"This function {beh}, but one operator in it has been changed and now it has a bug. Find "
                        f"and fix it.",
                        f"A colleague edited this function and broke it. It {beh}. Which line is wrong, and what "
                        f"should it be?",
                        f"The function below {beh}, or at least it did before someone changed it. Spot the bug."])
    else:
        t = rng.choice(["Something in this function was changed and it no longer works as intended. Find the bug:",
                        "There is a subtle bug in this function. Where is it, and how would you fix it?",
                        "Review this function carefully. One comparison or operator looks wrong. Which one?"])
    return f"{t}\n{py_block(code)}", ("bugstd", f.module, f.qual)


def gen_tests(rng, corpus):
    if rng.random() < 0.6:
        sig, beh = rng.choice(PY_FUNCS)
        return fill(rng.choice(TEST_T), sig=sig, name=_split_sig(sig), beh=beh), ("test", sig)
    f = rng.choice(corpus[1])
    t = rng.choice(["Write unit tests for this function using pytest:", "Write a unittest.TestCase for the following "
                    f"function from `{f.module}`:", "What edge cases should be tested for this function? Write the "
                    "tests.", "Write a few pytest tests, including edge cases, for this function:"])
    return f"{t}\n{py_block(code_without_docstring(f))}", ("teststd", f.module, f.qual)


def gen_py_topic(rng, _):
    if rng.random() < 0.35:
        q = rng.choice(CS_QUESTIONS)
        return q, ("cs", q)
    topic = rng.choice(PY_TOPICS)
    return fill(rng.choice(PY_TOPIC_T), t=topic), ("pyt", topic)


def gen_js(rng, _):
    task = rng.choice(JS_TASKS)
    return fill(rng.choice(JS_T), t=task), ("js", task)


def gen_sql(rng, _):
    if rng.random() < 0.2:
        q = rng.choice(SQL_CONCEPTS)
        return q, ("sqlc", q)
    schema, qs = rng.choice(SQL_SCHEMAS)
    q = rng.choice(qs)
    return fill(rng.choice(SQL_T), s=schema, q=q), ("sql", q)


def gen_bash(rng, _):
    if rng.random() < 0.35:
        c = rng.choice(BASH_CMDS)
        return rng.choice(BASH_CMD_T).replace("{c}", c), ("bashc", c)
    task = rng.choice(BASH_TASKS)
    return fill(rng.choice(BASH_T), t=task), ("bash", task)


def gen_c(rng, _):
    r = rng.random()
    if r < 0.55:
        q = rng.choice(C_TASKS)
        return q, ("c", q)
    if r < 0.8:
        code = rng.choice(C_SNIPPETS)
        t = rng.choice(["Explain what this C code does:", "What does this C function do, and how would you call it?",
                        "Walk me through this C snippet line by line:"])
        return f"{t}\n```c\n{code}\n```", ("csnip", code)
    code = rng.choice(C_BUGGY)
    t = rng.choice(["What is wrong with this C code?", "This C code compiles but misbehaves. Why?",
                    "Find the bug in this C snippet and explain how to fix it:"])
    return f"{t}\n```c\n{code}\n```", ("cbug", code)


CODE_GENS = [("py_function", 20, gen_py_func), ("py_class", 6, gen_py_class), ("stdlib_docstring", 18, gen_stdlib_doc),
             ("stdlib_explain", 13, gen_stdlib_explain), ("explain_snippet", 4, gen_explain_snippet),
             ("find_bug", 8, gen_bug), ("unit_tests", 7, gen_tests), ("py_concepts", 6, gen_py_topic),
             ("javascript", 6, gen_js), ("sql", 5, gen_sql), ("bash", 4, gen_bash), ("c", 3, gen_c)]


# ==================================================================================================
# Maths / reasoning word problems
# ==================================================================================================
STEP = words("STEP")
SHOP_ITEMS = pairs("SHOP_ITEMS")
VEHICLES = ["car", "train", "cyclist", "bus", "runner", "truck", "motorbike", "ferry"]
SPEEDS = {"car": (50, 110), "train": (60, 200), "cyclist": (12, 30), "bus": (30, 70), "runner": (8, 15),
          "truck": (50, 90), "motorbike": (40, 110), "ferry": (20, 45)}


def ordinal(n):
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def times(k):
    return {2: "twice", 3: "three times", 4: "four times"}.get(k, f"{k} times")


def _name(rng):
    n, pr = rng.choice(NAMES)
    pos = {"she": "her", "he": "his", "they": "their"}[pr]
    return n, pr, pos


def _step(rng):
    return rng.choice(STEP)


def m_shopping(rng):
    cur = rng.choice(CURRENCIES)
    (s1, p1s, lo1, hi1), (s2, p2s, lo2, hi2) = rng.sample(SHOP_ITEMS, 2)
    a, b = rng.randint(2, 9), rng.randint(2, 6)
    c1 = round(rng.uniform(float(lo1), float(hi1)) * 4) / 4 or 0.25
    c2 = round(rng.uniform(float(lo2), float(hi2)) * 4) / 4 or 0.25
    total = a * c1 + b * c2
    note = next(x for x in (5, 10, 20, 50, 100, 200, 500) if x > total)
    n, pr, pos = _name(rng)
    verb = "pays" if pr != "they" else "pay"
    t = rng.choice([
        f"{n} buys {a} {p1s} at {money(cur, c1)} each and {b} {p2s} at {money(cur, c2)} each. {cap(pr)} {verb} with "
        f"a {cur}{note} note. How much change should {pr} get? {_step(rng)}",
        f"At the market, {a} {p1s} cost {money(cur, c1)} each and {b} {p2s} cost {money(cur, c2)} each. What is the total "
        f"bill, and how much is left from {cur}{note}? {_step(rng)}",
        f"I bought {a} {p1s} for {money(cur, c1)} each and some {p2s} for {money(cur, c2)} each. I spent "
        f"{money(cur, total)} in total. How many {p2s} did I buy? {_step(rng)}"])
    return t


def m_bill(rng):
    cur = rng.choice(CURRENCIES)
    people = rng.randint(3, 9)
    bill = rng.randint(40, 400) + rng.choice([0, 0.5, 0.25, 0.8])
    tip = rng.choice([10, 12, 15, 18, 20])
    return rng.choice([
        f"A group of {people} friends have dinner and the bill comes to {money(cur, bill)}. They add a {tip}% tip and "
        f"split the total equally. How much does each person pay? {_step(rng)}",
        f"The restaurant bill is {money(cur, bill)} before a {tip}% service charge. If {people} people share it evenly, "
        f"what is each share, to the nearest cent? {_step(rng)}"])


def m_discount(rng):
    cur = rng.choice(CURRENCIES)
    price = rng.choice([rng.randint(12, 400), rng.randint(10, 99) + 0.99])
    d = rng.choice([10, 15, 20, 25, 30, 35, 40, 50])
    tax = rng.choice([5, 7, 8, 10, 12, 20])
    item = rng.choice(["pair of boots", "jacket", "blender", "bike helmet", "desk lamp", "backpack", "coffee machine",
                       "suitcase", "tennis racket", "winter coat"])
    d2 = rng.choice([5, 10, 15, 20])
    return rng.choice([
        f"A {item} costs {money(cur, price)}. It is on sale for {d}% off, and then {tax}% sales tax is added to the sale "
        f"price. What is the final price? {_step(rng)}",
        f"A shop takes {d}% off a {item} that normally costs {money(cur, price)}, then gives loyalty members a further "
        f"{d2}% off the reduced price. Is that the same as {d + d2}% off? Work out the final price. {_step(rng)}",
        f"After a {d}% discount, a {item} costs {money(cur, price * (100 - d) / 100)}. What was the original price? "
        f"{_step(rng)}"])


def m_percent(rng):
    a = rng.randint(2, 95)
    x = rng.choice([rng.randint(20, 2000), rng.randint(2, 99) * 10])
    y = rng.randint(120, 5000)
    part = rng.randint(10, y - 1)
    old, new = rng.randint(200, 20000), 0
    new = int(old * rng.uniform(0.6, 1.6))
    what = rng.choice(["a town's population", "a website's monthly visitors", "a shop's weekly sales",
                       "the number of members of a club", "the price of a used car", "a company's staff count"])
    n, pr, pos = _name(rng)
    return rng.choice([
        f"What is {a}% of {x}? {_step(rng)}",
        f"{part} out of {y} people in a survey said they cycle to work. What percentage is that, to one decimal "
        f"place? {_step(rng)}",
        f"Over one year, {what} went from {old:,} to {new:,}. What was the percentage change? {_step(rng)}",
        f"{n} scored {part % 50 + 20} out of {50 + part % 30 + 20} on a test. What is {pos} score as a percentage? "
        f"{_step(rng)}",
        f"{x} is {a}% of what number? {_step(rng)}",
        f"A salary of {rng.choice(CURRENCIES)}{old * 3:,} rises by {a % 12 + 1}% one year and by {a % 7 + 2}% the "
        f"next. What is the salary after both rises, and what is the total percentage increase? {_step(rng)}"])


def m_speed(rng):
    v = rng.choice(VEHICLES)
    lo, hi = SPEEDS[v]
    s = rng.randint(lo, hi)
    h, m = rng.randint(0, 4), rng.choice([0, 10, 15, 20, 30, 40, 45, 50])
    if h == 0 and m == 0:
        h = 1
    d = round(s * (h + m / 60), 1)
    dur = (f"{h} hour{'s' if h != 1 else ''} " if h else "") + (f"{m} minutes" if m else "")
    d2 = rng.randint(20, 400)
    s2 = rng.randint(lo, hi)
    t0 = f"{rng.randint(6, 11)}:{rng.choice(['00', '15', '30', '45'])}"
    return rng.choice([
        f"A {v} travels {d:g} km in {dur.strip()}. What is its average speed in km/h? {_step(rng)}",
        f"If a {v} moves at a steady {s} km/h, how long does it take to cover {d2} km? Give the answer in hours and "
        f"minutes. {_step(rng)}",
        f"Two towns are {d2} km apart. A {v} leaves one town at {t0} heading towards the other at {s} km/h, and at the "
        f"same time a second {v} leaves the other town at {s2} km/h. When and where do they meet? {_step(rng)}",
        f"A {v} covers the first half of a {d2} km journey at {s} km/h and the second half at {s2} km/h. What is its "
        f"average speed for the whole journey? (Hint: it is not simply the average of the two speeds.) {_step(rng)}",
        f"You walk to the station at {rng.randint(4, 6)} km/h and it takes {rng.randint(12, 40)} minutes. How far is "
        f"the station, and how long would it take by bike at {rng.randint(14, 22)} km/h? {_step(rng)}"])


def m_work(rng):
    a, b = rng.sample([2, 3, 4, 5, 6, 8, 9, 10, 12], 2)
    w, d = rng.randint(2, 9), rng.randint(3, 30)
    w2 = rng.randint(2, 15)
    n, pr, pos = _name(rng)
    n2 = _name(rng)[0]
    if n2 == n:
        n2 = "a friend"
    return rng.choice([
        f"One pipe can fill a tank in {a} hours and another can fill it in {b} hours. How long does it take with both "
        f"pipes open? {_step(rng)}",
        f"{n} can paint a fence in {a} hours, and {n2} can paint it in {b} hours. If they work together, how long will "
        f"it take? {_step(rng)}",
        f"{w} workers can build a wall in {d} days. How many days would {w2} workers take, working at the same rate? "
        f"{_step(rng)}",
        f"A printer prints {rng.randint(12, 60)} pages per minute. How long will it take to print {rng.randint(3, 40)} "
        f"copies of a {rng.randint(8, 120)}-page report? {_step(rng)}",
        f"A tap fills a bath in {a * 5} minutes, but the plug leaks and would empty the full bath in {b * 5 + a * 5} "
        f"minutes. How long does it take to fill the bath? {_step(rng)}"])


def m_unit_price(rng):
    cur = rng.choice(CURRENCIES)
    name, unit, sizes = rng.choice([("cereal", "g", [375, 500, 750, 1000]), ("washing powder", "kg", [1, 2, 3, 5]),
                                    ("olive oil", "ml", [250, 500, 750, 1000]), ("coffee beans", "g", [200, 250, 500, 1000]),
                                    ("orange juice", "litre", [1, 2, 3]), ("rice", "kg", [1, 2, 5]),
                                    ("yoghurt", "g", [150, 500, 1000]), ("dog food", "kg", [2, 4, 10, 15])])
    s1, s2 = sorted(rng.sample(sizes, 2))
    p1 = round(rng.uniform(0.8, 5) * (s1 / sizes[0]) ** 0.8, 2)
    p2 = round(p1 * s2 / s1 * rng.uniform(0.75, 1.1), 2)
    u = unit if unit in ("g", "ml", "kg") else f" {unit}" + ("s" if s1 != 1 else "")
    u2 = unit if unit in ("g", "ml", "kg") else f" {unit}" + ("s" if s2 != 1 else "")
    return rng.choice([
        f"A {s1}{u} pack of {name} costs {money(cur, p1)} and a {s2}{u2} pack costs {money(cur, p2)}. Which is the "
        f"better deal? {_step(rng)}",
        f"Which is cheaper per unit: {s1}{u} of {name} for {money(cur, p1)} or {s2}{u2} for {money(cur, p2)}? "
        f"{_step(rng)}"])


def m_fuel(rng):
    cur = rng.choice(CURRENCIES)
    l100 = round(rng.uniform(4.5, 9.5), 1)
    dist = rng.randint(80, 900)
    price = round(rng.uniform(1.3, 2.1), 2)
    mpg = rng.randint(25, 55)
    return rng.choice([
        f"A car uses {l100} litres of fuel per 100 km. How much fuel is needed for a {dist} km trip, and what does it "
        f"cost if fuel is {money(cur, price)} per litre? {_step(rng)}",
        f"My car does {mpg} miles per gallon. How many gallons do I need for a {dist}-mile road trip, and how much "
        f"will it cost at {money(cur, price * 4)} a gallon? {_step(rng)}"])


def m_ages(rng):
    n1, _, _ = _name(rng)
    n2 = _name(rng)[0]
    while n2 == n1:
        n2 = _name(rng)[0]
    child = rng.randint(3, 16)
    k = rng.choice([2, 3, 4])
    parent = child * k
    if parent < 20:
        parent += child * (k + 1) - parent if child * (k + 1) >= 20 else 0
        k = parent // child if parent % child == 0 else k
    parent = child * k
    y = rng.randint(2, 15)
    s = child + parent
    diff = rng.randint(2, 9)
    a = rng.randint(5, 40)
    return rng.choice([
        f"{n1} is {times(k)} as old as {n2}. Together their ages add up to {s}. How old is each of them? {_step(rng)}",
        f"{n1} is {diff} years older than {n2}. In {y} years, the sum of their ages will be {2 * a + diff + 2 * y}. "
        f"How old are they now? {_step(rng)}",
        f"A mother is {parent} and her daughter is {child}. In how many years will the mother be exactly twice as "
        f"old as her daughter, if ever? {_step(rng)}" if parent > 2 * child else
        f"A father is {parent + 30} and his son is {child}. How many years ago was the father {times(k + 1)} as old as "
        f"his son, if ever? {_step(rng)}",
        f"{y} years ago, {n1} was {times(k)} as old as {n2}. Today {n2} is {child + y}. How old is {n1} now? "
        f"{_step(rng)}"])


def m_convert(rng):
    x = rng.choice([rng.randint(2, 500), round(rng.uniform(1, 50), 1)])
    c = rng.randint(-20, 40)
    f = rng.randint(-5, 105)
    d = rng.randint(2, 30)
    return rng.choice([
        f"Convert {x:g} miles to kilometres. {_step(rng)}",
        f"How many pounds is {x:g} kg? {_step(rng)}",
        f"What is {c} degrees Celsius in Fahrenheit? {_step(rng)}",
        f"Convert {f}°F to Celsius and round to one decimal place. {_step(rng)}",
        f"How many seconds are there in {d} days? {_step(rng)}",
        f"A room is {rng.randint(3, 8)} m by {rng.randint(3, 8)}.{rng.randint(0, 9)} m. What is its area in square "
        f"feet? {_step(rng)}",
        f"A recipe calls for {rng.randint(2, 9) * 50} g of flour, but I only have measuring cups. If one cup of flour "
        f"weighs about 125 g, how many cups do I need? {_step(rng)}",
        f"How many millilitres are in {rng.randint(2, 12)} US fluid ounces? {_step(rng)}",
        f"A marathon is 42.195 km. If someone runs it in {rng.randint(3, 5)} hours {rng.randint(0, 59)} minutes, "
        f"what is their average pace in minutes per kilometre? {_step(rng)}",
        f"A {rng.randint(2, 20)} GB file downloads at {rng.randint(5, 200)} megabits per second. Roughly how many "
        f"minutes will it take? {_step(rng)}"])


def m_linear(rng):
    var = rng.choice(["x", "x", "y", "n", "t", "a"])
    sol = rng.randint(-12, 15)
    a, c = rng.sample([k for k in range(-9, 10) if k not in (0, 1)], 2)
    b = rng.randint(-20, 20)
    d = (a - c) * sol + b
    def term(k):
        return (f"{k}{var}" if k not in (1, -1) else (var if k == 1 else f"-{var}"))
    rhs = f"{term(c)} + {d}" if d >= 0 else f"{term(c)} - {-d}"
    lhs = f"{term(a)} + {b}" if b >= 0 else f"{term(a)} - {-b}"
    p, q = rng.randint(2, 6), rng.randint(1, 9)
    return rng.choice([
        f"Solve for {var}: {lhs} = {rhs}. {_step(rng)}",
        f"Find {var} if {lhs} = {rhs}, and check your answer by substituting it back. {_step(rng)}",
        f"Solve the equation {p}({var} + {q}) = {p * (sol + q)}. {_step(rng)}",
        f"I think of a number, multiply it by {p}, add {q}, and get {p * sol + q}. What was my number? {_step(rng)}"])


def m_system(rng):
    x, y = rng.randint(-6, 12), rng.randint(-6, 12)
    a, b, c, d = [rng.choice([k for k in range(-6, 7) if k]) for _ in range(4)]
    while a * d - b * c == 0:
        d += 1
        d = d or 1
    def eq(p, q, r):
        s = f"{p}x" if p not in (1, -1) else ("x" if p == 1 else "-x")
        s += (f" + {q}y" if q > 0 else f" - {-q}y") if abs(q) != 1 else (" + y" if q == 1 else " - y")
        return f"{s} = {r}"
    cur = rng.choice(CURRENCIES)
    pa, pc = rng.randint(8, 20), rng.randint(3, 9)
    na, nc = rng.randint(20, 200), rng.randint(20, 200)
    return rng.choice([
        f"Solve the simultaneous equations {eq(a, b, a * x + b * y)} and {eq(c, d, c * x + d * y)}. {_step(rng)}",
        f"A theatre sells adult tickets for {cur}{pa} and child tickets for {cur}{pc}. One evening it sells {na + nc} "
        f"tickets and takes {cur}{na * pa + nc * pc:,}. How many adult tickets were sold? {_step(rng)}",
        f"A farmer has chickens and cows. Altogether there are {na + nc} heads and {2 * na + 4 * nc} legs. How many of "
        f"each animal are there? {_step(rng)}",
        f"Two numbers add up to {x * 3 + y * 5 + 40} and differ by {abs(x * 3 - y * 5) + 2}. What are they? "
        f"{_step(rng)}"])


def m_sequence(rng):
    a, d = rng.randint(-10, 30), rng.choice([k for k in range(-9, 13) if k])
    seq = [a + i * d for i in range(5)]
    g0, r = rng.randint(1, 6), rng.choice([2, 3, 4, -2])
    gs = [g0 * r ** i for i in range(5)]
    n = rng.randint(10, 60)
    sq0 = rng.randint(1, 6)
    return rng.choice([
        f"What are the next two numbers in the sequence {', '.join(map(str, seq[:4]))}, ...? Find a formula for the "
        f"n-th term. {_step(rng)}",
        f"Find the {ordinal(n)} term of the arithmetic sequence {', '.join(map(str, seq))}, ... {_step(rng)}",
        f"What is the sum of the first {n} terms of the sequence {', '.join(map(str, seq[:4]))}, ...? {_step(rng)}",
        f"The sequence {', '.join(map(str, gs[:4]))}, ... is geometric. What is the common ratio, and what is the "
        f"{ordinal(rng.randint(7, 12))} term? {_step(rng)}",
        f"What comes next: {', '.join(str((sq0 + i) ** 2 + 1) for i in range(4))}, ...? Explain the pattern.",
        f"Each term of a sequence is the sum of the two before it. The first two terms are {g0} and {g0 + d % 5 + 1}. "
        f"What is the tenth term? {_step(rng)}",
        f"How many numbers are there in the list {seq[0]}, {seq[1]}, {seq[2]}, ..., {a + (n - 1) * d}? {_step(rng)}"])


def m_average(rng):
    k = rng.randint(4, 7)
    scores = [rng.randint(55, 100) for _ in range(k)]
    avg_target = sum(scores) // k
    n, pr, pos = _name(rng)
    temps = [rng.randint(-5, 30) for _ in range(7)]
    return rng.choice([
        f"{n}'s first {k - 1} test scores are {', '.join(map(str, scores[:-1]))}. What score does {pr} need on the "
        f"next test to have an average of exactly {avg_target + rng.randint(0, 3)}? {_step(rng)}",
        f"The daily high temperatures last week were {', '.join(map(str, temps))} °C. Find the mean, median and "
        f"range. {_step(rng)}",
        f"The average of {k} numbers is {avg_target}. When one number is removed, the average of the rest is "
        f"{avg_target - rng.randint(1, 6)}. What number was removed? {_step(rng)}",
        f"A class of {rng.randint(18, 32)} students has an average height of {rng.randint(140, 175)} cm. A new "
        f"student who is {rng.randint(130, 190)} cm tall joins. What is the new average? {_step(rng)}"])


def m_interest(rng):
    cur = rng.choice(CURRENCIES)
    p = rng.randint(5, 200) * 100
    r = rng.choice([1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5, 6, 7])
    y = rng.randint(2, 15)
    return rng.choice([
        f"If I invest {cur}{p:,} at {r}% simple interest per year, how much interest will I earn in {y} years? "
        f"{_step(rng)}",
        f"{cur}{p:,} is put in a savings account paying {r}% interest, compounded annually. How much is in the account "
        f"after {y} years? {_step(rng)}",
        f"Roughly how many years does it take for money to double at {r}% annual compound interest? Compare the rule "
        f"of 72 with the exact answer. {_step(rng)}",
        f"A loan of {cur}{p:,} charges {r}% interest per year, compounded monthly. What is owed after {y} years if "
        f"nothing is repaid? {_step(rng)}"])


def m_ratio(rng):
    cur = rng.choice(CURRENCIES)
    a, b = rng.choice([(1, 2), (1, 3), (2, 3), (3, 4), (2, 5), (3, 5), (4, 5), (1, 4), (3, 7), (5, 7), (5, 8)])
    if rng.random() < 0.5:
        a, b = b, a
    total = (a + b) * rng.randint(5, 200)
    n1, n2 = rng.choice(NAMES)[0], rng.choice(NAMES)[0]
    if n1 == n2:
        n2 = "a partner"
    serves, want = rng.randint(2, 6), rng.randint(3, 12)
    flour = rng.randint(2, 8) * 50
    return rng.choice([
        f"{n1} and {n2} share {cur}{total:,} in the ratio {a}:{b}. How much does each get? {_step(rng)}",
        f"A recipe for {serves} people uses {flour} g of flour and {rng.randint(1, 4)} eggs. How much of each do I "
        f"need for {want} people? {_step(rng)}",
        f"Paint is mixed from blue and yellow in the ratio {a}:{b}. How much blue paint is needed to make "
        f"{rng.randint(2, 20)} litres of the mix? {_step(rng)}",
        f"On a map with a scale of 1:{rng.choice([25000, 50000, 100000, 250000])}, two villages are "
        f"{rng.randint(2, 30)}.{rng.randint(0, 9)} cm apart. What is the real distance in kilometres? {_step(rng)}"])


def m_time(rng):
    h, m = rng.randint(1, 11), rng.randint(0, 59)
    dh, dm = rng.randint(0, 4), rng.randint(5, 59)
    ampm = rng.choice(["am", "pm"])
    tz = rng.randint(1, 9)
    return rng.choice([
        f"A film starts at {h}:{m:02d} {ampm} and lasts {dh} hours and {dm} minutes. What time does it finish? "
        f"{_step(rng)}",
        f"A flight leaves at {h}:{m:02d} {ampm} local time, lasts {dh + 2} hours {dm} minutes, and lands in a city "
        f"that is {tz} hours ahead. What is the local time on arrival? {_step(rng)}",
        f"I need to arrive at work by {rng.randint(6, 10)}:{m:02d} am. The commute takes {dm} minutes and I need {dh * 10 + 25} "
        f"minutes to get ready. What time should I wake up? {_step(rng)}",
        f"How many minutes are there between {h}:{m:02d} am and {rng.randint(1, 11)}:{rng.randint(0, 59):02d} pm on "
        f"the same day? {_step(rng)}"])


def m_geometry(rng):
    a, b = rng.randint(3, 40), rng.randint(3, 40)
    r = rng.randint(2, 25)
    cur = rng.choice(CURRENCIES)
    return rng.choice([
        f"A garden is {a} m long and {b} m wide. How much fencing is needed to go all the way round, and what is its "
        f"area? {_step(rng)}",
        f"A circular pond has a radius of {r} m. What is its area and circumference? Use pi ≈ 3.14. {_step(rng)}",
        f"A right-angled triangle has legs of {a} cm and {b} cm. How long is the hypotenuse? {_step(rng)}",
        f"A wall is {rng.randint(3, 9)} m wide and {rng.randint(2, 3)}.{rng.randint(0, 9)} m high, with a "
        f"window of 1.2 m by 1 m. One litre of paint covers {rng.randint(8, 12)} square metres. How many litres do I "
        f"need for two coats? {_step(rng)}",
        f"A box measures {a} cm by {b} cm by {rng.randint(3, 30)} cm. What is its volume in litres? {_step(rng)}",
        f"Carpet costs {money(cur, rng.randint(8, 40) + 0.5)} per square metre. How much does it cost to carpet a "
        f"room that is {rng.randint(3, 7)}.{rng.randint(0, 9)} m by {rng.randint(3, 7)} m? {_step(rng)}",
        f"A pizza with a diameter of {rng.choice([25, 30, 35])} cm costs {money(cur, rng.randint(8, 14))}, and one "
        f"with a diameter of {rng.choice([40, 45])} cm costs {money(cur, rng.randint(15, 22))}. Which gives more pizza "
        f"per {cur}? {_step(rng)}"])


def m_probability(rng):
    r, b = rng.randint(2, 9), rng.randint(2, 9)
    g = rng.randint(0, 5)
    n = rng.randint(3, 6)
    bag = f"{r} red, {b} blue" + (f" and {g} green marbles" if g else " marbles").replace("blue and", "blue and")
    if not g:
        bag = f"{r} red and {b} blue marbles"
    return rng.choice([
        f"A bag contains {bag}. If I take two marbles without looking and without putting the first back, how "
        f"likely is it that both are red? {_step(rng)}",
        f"I flip a fair coin {n} times. What are the chances of getting exactly {rng.randint(1, n - 1)} heads? "
        f"{_step(rng)}",
        f"A bag has {bag}. One marble is drawn at random. Find the probability it is not red. {_step(rng)}",
        f"Two dice are rolled. Find the probability that the two numbers are the same. {_step(rng)}",
        f"A spinner has {n + 2} equal sections numbered 1 to {n + 2}. If it is spun twice, how likely is it that the "
        f"total is even? {_step(rng)}",
        f"In a class of {rng.randint(20, 35)} students, {rng.randint(5, 15)} play football, {rng.randint(5, 15)} play "
        f"tennis and {rng.randint(1, 4)} play both. How many play neither? {_step(rng)}"])


def m_counting(rng):
    k = rng.choice([3, 4, 6, 7, 9, 11, 12, 13])
    lo, hi = rng.randint(1, 100), rng.randint(200, 2000)
    n = rng.randint(4, 9)
    return rng.choice([
        f"How many multiples of {k} are there between {lo} and {hi}, inclusive? {_step(rng)}",
        f"In how many different ways can {n} people stand in a line? {_step(rng)}",
        f"A committee of {rng.randint(2, 4)} people is chosen from {n + 4} candidates. How many different committees "
        f"are possible? {_step(rng)}",
        f"Every person at a party of {n + 6} shakes hands with everyone else exactly once. How many handshakes are "
        f"there? {_step(rng)}",
        f"A lock has {rng.randint(3, 5)} dials, each showing the digits 0 to 9. How many combinations are there, and "
        f"how many have no repeated digit? {_step(rng)}"])


def m_multistep(rng):
    cur = rng.choice(CURRENCIES)
    n, pr, pos = _name(rng)
    loaves, price, cost = rng.randint(40, 300), rng.randint(2, 6) + 0.5, round(rng.uniform(0.6, 1.8), 2)
    days = rng.randint(5, 7)
    hourly, hours, ot = rng.randint(11, 40), rng.randint(30, 40), rng.randint(2, 12)
    has = "have" if pr == "they" else "has"
    return rng.choice([
        f"A bakery sells {loaves} loaves a day at {money(cur, price)} each. Each loaf costs {money(cur, cost)} to make. "
        f"How much profit does it make in a week if it opens {days} days a week? {_step(rng)}",
        f"{n} earns {money(cur, hourly)} an hour for the first {hours} hours each week and time and a half after that. "
        f"How much does {pr} earn in a week with {hours + ot} hours? {_step(rng)}",
        f"{n} reads {rng.randint(10, 60)} pages a day. {cap(pr)} {has} a {rng.randint(250, 900)}-page book and "
        f"{rng.randint(5, 15)} days before it is due back at the library. Will {pr} finish in time? {_step(rng)}",
        f"A school trip for {rng.randint(25, 90)} students needs buses that seat {rng.randint(30, 55)} each. "
        f"Each bus costs {cur}{rng.randint(150, 600)} to hire. What is the cheapest total cost, and how much is that "
        f"per student? {_step(rng)}",
        f"A phone plan costs {money(cur, rng.randint(10, 30))} a month plus {money(cur, rng.randint(5, 20) / 100)} per "
        f"minute over {rng.randint(1, 5) * 100} minutes. How much is the bill for a month with {rng.randint(150, 900)} "
        f"minutes of calls? {_step(rng)}"])


def m_logic(rng):
    names = [x[0] for x in rng.sample(NAMES, 4)]
    a, b, c, d = names
    return rng.choice([
        f"{a} is taller than {b}. {c} is shorter than {b} but taller than {d}. Who is the second tallest? "
        f"{_step(rng)}",
        f"{a}, {b} and {c} each have a different pet: a cat, a dog and a parrot. {a} is allergic to fur and {b} does "
        f"not own the dog. Who owns which pet? {_step(rng)}",
        f"If it takes {rng.randint(3, 8)} machines {rng.randint(3, 8)} minutes to make the same number of widgets, how "
        f"long would it take {rng.randint(50, 200)} machines to make that many widgets each? {_step(rng)}",
        f"{a} always tells the truth and {b} always lies. One of them says, \"We are both liars.\" Who said it? "
        f"{_step(rng)}",
        f"A snail is at the bottom of a {rng.randint(8, 30)}-metre well. Each day it climbs {rng.randint(3, 5)} metres "
        f"and each night it slips back 2 metres. On which day does it reach the top? {_step(rng)}",
        f"In a race, {a} finished ahead of {b} but behind {c}. {d} finished last. Who won, and in what order did they "
        f"finish? {_step(rng)}"])


MATH_GENS = [("shopping", 6, m_shopping), ("bill_split", 3, m_bill), ("discount_tax", 5, m_discount),
             ("percentages", 8, m_percent), ("speed_distance", 7, m_speed), ("work_rates", 5, m_work),
             ("unit_price", 3, m_unit_price), ("fuel", 2, m_fuel), ("ages", 5, m_ages),
             ("unit_conversion", 7, m_convert), ("linear_equation", 7, m_linear), ("simultaneous", 5, m_system),
             ("sequences", 6, m_sequence), ("averages", 5, m_average), ("interest", 4, m_interest),
             ("ratios", 4, m_ratio), ("time", 4, m_time), ("geometry", 5, m_geometry),
             ("probability", 4, m_probability), ("counting", 3, m_counting), ("multi_step", 5, m_multistep),
             ("logic", 3, m_logic)]


def _math(fn):
    def gen(rng, _):
        return fn(rng), None
    return gen


MATH_GENS = [(name, w, _math(fn)) for name, w, fn in MATH_GENS]
GENERATORS = {"chat": CHAT_GENS, "code": CODE_GENS, "math": MATH_GENS}


# ==================================================================================================
# Assembly
# ==================================================================================================
def make_prompts(n=8000, seed=0, stats=None, shares=SHARES):
    """`n` distinct prompts as (category, kind, prompt) tuples, shuffled with `seed`.

    `shares` is ((category, fraction), ...) over "chat", "code", "math" (default SHARES). `stats`,
    when a dict, receives the counts of held-out drops and of rejected duplicates."""
    rng = random.Random(seed)
    heldout = HeldOut([p for f in EVAL_FILES for p in read_prompts(f)], read_prompts(OLD_TRAIN_FILE))
    corpus = harvest_stdlib()
    quotas, left = {}, n
    for i, (cat, share) in enumerate(shares):
        quotas[cat] = left if i == len(shares) - 1 else round(n * share)
        left -= quotas[cat]
    seen, cores = set(), Counter()
    out, dropped, dupes = [], 0, 0
    for cat, _ in shares:
        gens = GENERATORS[cat]
        names = [g[0] for g in gens]
        weights = [g[1] for g in gens]
        fns = {g[0]: g[2] for g in gens}
        got, attempts = 0, 0
        while got < quotas[cat]:
            attempts += 1
            if attempts > 100 * quotas[cat] + 1000:
                raise RuntimeError(f"could not make {quotas[cat]} distinct {cat} prompts")
            kind = rng.choices(names, weights)[0]
            res = fns[kind](rng, corpus)
            if res is None:
                continue
            text, core = res
            text = "\n".join(x.rstrip() for x in text.strip().splitlines())
            text = re.sub(r"(?<=\S)  +(?=\S)", " ", text) if "```" not in text else text
            key = " ".join(token_variants(text)[1])
            if key in seen or (core is not None and cores[core] >= MAX_CORE):
                dupes += 1
                continue
            if heldout.hit(text):
                dropped += 1
                seen.add(key)
                continue
            seen.add(key)
            if core is not None:
                cores[core] += 1
            out.append((cat, kind, text))
            got += 1
    rng.shuffle(out)
    if stats is not None:
        stats.update(dropped_heldout=dropped, rejected_duplicates=dupes)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="output JSONL path")
    ap.add_argument("--n", type=int, default=8000, help="number of prompts (default 8000)")
    ap.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    ap.add_argument("--shares", default=None, metavar="CAT=F,...",
                    help="category shares, e.g. code=0.7,chat=0.2,math=0.1 (default "
                         + ",".join(f"{c}={f}" for c, f in SHARES) + ")")
    args = ap.parse_args(argv)
    if args.n < 1:
        ap.error("--n must be positive")
    shares = SHARES
    if args.shares:
        try:
            shares = tuple((c, float(f)) for c, f in (kv.split("=") for kv in args.shares.split(",")))
        except ValueError:
            ap.error(f"--shares: expected CAT=FRACTION,..., got {args.shares!r}")
        unknown = [c for c, _ in shares if c not in GENERATORS]
        if unknown or abs(sum(f for _, f in shares) - 1) > 1e-6:
            ap.error(f"--shares: categories must be among {sorted(GENERATORS)} and sum to 1, got {args.shares!r}")
    t0 = time.perf_counter()
    stats = {}
    items = make_prompts(args.n, args.seed, stats, shares)
    d = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(d, exist_ok=True)
    with open(args.out, "w", encoding="utf-8", newline="\n") as f:
        for _, _, text in items:
            f.write(json.dumps({"prompt": text}, ensure_ascii=False) + "\n")
    cats = Counter(c for c, _, _ in items)
    kinds = Counter((c, k) for c, k, _ in items)
    err = sys.stderr
    print(f"wrote {len(items)} prompts to {args.out} (seed {args.seed}) in {time.perf_counter() - t0:.1f} s", file=err)
    for cat, _ in shares:
        print(f"  {cat:5s} {cats[cat]:6d}  ({100 * cats[cat] / len(items):.1f}%)", file=err)
        for (c, k), v in sorted(kinds.items(), key=lambda kv: -kv[1]):
            if c == cat:
                print(f"      {k:18s} {v:6d}", file=err)
    print(f"  dropped {stats['dropped_heldout']} candidates that overlapped the evaluation prompts "
          f"(exact match or a shared {NGRAM}-word sequence) or repeated an old training prompt; "
          f"rejected {stats['rejected_duplicates']} duplicates/over-used items", file=err)
    return 0


if __name__ == "__main__":
    sys.exit(main())
