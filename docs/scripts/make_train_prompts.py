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

    python docs/scripts/make_train_prompts.py --out prompts.jsonl [--n 8000] [--seed 0]

The per-category counts go to stderr.
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

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EVAL_FILES = [os.path.join(REPO_ROOT, "mlx_specdec_plugin", "prompts", f + ".jsonl") for f in ("chat", "code", "math")]
OLD_TRAIN_FILE = os.path.join(REPO_ROOT, "mlx_specdec_plugin", "data", "train_prompts.jsonl")
SHARES = (("chat", 0.45), ("code", 0.35), ("math", 0.20))
NGRAM = 6
MAX_CORE = 3          # at most this many prompts built around the same core item (concept, task, ...)


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
NAMES = P("""
Amara|she
Ben|he
Carlos|he
Dana|she
Elif|she
Farid|he
Grace|she
Hiroshi|he
Ines|she
Jamal|he
Kavya|she
Liam|he
Mei|she
Nikolai|he
Olivia|she
Pedro|he
Quinn|they
Rosa|she
Sanjay|he
Tomasz|he
Uma|she
Victor|he
Wanjiru|she
Xavier|he
Yara|she
Zoe|she
Aiden|he
Bea|she
Chidi|he
Daniela|she
Emeka|he
Fatima|she
Gustav|he
Hana|she
Ivan|he
Jun|he
Keira|she
Luca|he
Maya|she
Noor|she
Oscar|he
Priya|she
Rafael|he
Sofia|she
Theo|he
Valentina|she
Wei|he
Yusuf|he
Alex|they
Sam|they
""")
CURRENCIES = ["$", "$", "$", "€", "£"]
MONTHS = L("January February March April May June July August September October November December".replace(" ", "\n"))
DAYS = L("Monday Tuesday Wednesday Thursday Friday Saturday Sunday".replace(" ", "\n"))

AUDIENCES = L("""
a five-year-old
an eight-year-old
a twelve-year-old
a curious teenager
a high school student
a first-year university student
a complete beginner
my grandmother
my grandfather, who has never used a smartphone
a software engineer
a nurse
a farmer
a history teacher
a teenager who thinks science is boring
someone who is learning English
a group of retirees
a skeptical friend
a journalist writing a short article
a primary school class
an artist with no science background
a friend over coffee
a podcast audience
a small business owner
a medical student
a parent helping with homework
someone who hates maths
a visitor from the eighteenth century
a football fan
a classroom of adult learners
a chef
a musician
a lawyer
""")
SIMPLE_AUDIENCES = ["a five-year-old", "an eight-year-old", "a twelve-year-old", "someone who is learning English",
                    "a complete beginner", "a high school student", "my grandmother", "a curious teenager"]
PERSONAS = L("""
a university student
a retired teacher
a single parent with two kids
a nurse who works nights
new to this city
a busy software developer
a complete beginner
on a very tight budget
in my sixties
living in a small apartment
a first-time manager
working from home full time
a shift worker
a graduate student
recovering from a knee injury
an introvert
a freelance designer
a parent of a toddler
self-employed
a high school teacher
a new dad
a new mum
an international student
working two part-time jobs
""")
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
CONCEPTS = L("""
photosynthesis
the water cycle
plate tectonics
natural selection
the greenhouse effect
black holes
DNA replication
the theory of relativity
quantum entanglement
entropy
the Doppler effect
static electricity
magnetism
buoyancy
friction
chemical bonding
the periodic table
acids, bases and the pH scale
radioactive decay and half-life
nuclear fusion
the immune system
antibiotic resistance
the nitrogen cycle
ocean tides
why we have seasons
the phases of the Moon
the Big Bang theory
dark matter
exoplanets
cell division
enzymes
the placebo effect
circadian rhythms
food webs
biodiversity
erosion
how volcanoes form
earthquake magnitude scales
the speed of light
sound waves
how rainbows form
lightning
the ozone layer
climate feedback loops
carbon dating
genetic mutations
how vaccines work
the human gut microbiome
neurons and synapses
the scientific method
gravity
inertia
kinetic and potential energy
electric circuits
semiconductors
superconductivity
the Coriolis effect
osmosis
catalysts
the states of matter
absolute zero
the electromagnetic spectrum
supernovae
the life cycle of a star
coral bleaching
ocean acidification
the carbon cycle
how hurricanes form
mycorrhizal networks
bioluminescence
animal migration
hibernation
echolocation
public-key cryptography
machine learning
neural networks
large language models
cloud computing
blockchain
satellite navigation
Wi-Fi
5G mobile networks
solid-state drives
compilers
operating systems
virtual memory
database indexes
version control with Git
open-source software
end-to-end encryption
two-factor authentication
phishing attacks
browser cookies
the Domain Name System
HTTPS
APIs
recursion
Big O notation
hash tables
software containers
lithium-ion batteries
solar panels
heat pumps
3D printing
QR codes
touchscreens
Bluetooth
data compression
screen resolution and pixels
the difference between a CPU and a GPU
quantum computing
self-driving cars
recommendation algorithms
spam filters
VPNs
compound interest
inflation and purchasing power
how central banks set interest rates
index funds
credit scores
mortgages
the 50/30/20 budgeting rule
emergency funds
diversification
supply and demand
opportunity cost
how the stock market works
progressive tax brackets
gross domestic product
recessions
exchange rates
cryptocurrency
insurance deductibles
pension plans
dollar-cost averaging
the time value of money
tariffs
universal basic income
the debt snowball method
the Industrial Revolution
the fall of the Western Roman Empire
the printing press
the Renaissance
the Silk Road
the Cold War
the Apollo moon landings
the invention of writing
the Agricultural Revolution
the Black Death
the Magna Carta
the Ottoman Empire
the Meiji Restoration
the abolition of the slave trade
the women's suffrage movement
the fall of the Berlin Wall
how the pyramids of Giza were built
the Mongol Empire
the Age of Exploration
the Great Depression
the Marshall Plan
the Hanseatic League
the Inca road system
the Byzantine Empire
the Protestant Reformation
the Enlightenment
decolonisation in Africa
the American civil rights movement
the space race
sleep cycles
hydration
the benefits of stretching
blood pressure
cholesterol
metabolism
the glycaemic index
intermittent fasting
strength training for older adults
mindfulness meditation
stress hormones
seasonal allergies
vitamin D
posture
burnout
digital eye strain
caffeine and the body
how much protein we need
sunscreen and SPF ratings
heart rate training zones
basic first aid for burns
concussions
dehydration
refrigeration
how soap removes grease
composting
recycling symbols on packaging
home insulation
damp and mould in bathrooms
hard water
microwave ovens
how yeast makes bread rise
sourdough starters
fermentation
food preservation
the Maillard reaction
emulsions such as mayonnaise
gluten
umami
knife sharpening
seasoning a cast-iron pan
impressionism
perspective in drawing
the sonnet form
iambic pentameter
the hero's journey
jazz improvisation
major and minor scales
time signatures in music
film editing techniques
colour theory
minimalism in design
typography
baroque music
street art
opera
the origins of hip-hop
the exposure triangle in photography
symbolism in literature
unreliable narrators
metaphors and similes
the passive voice
etymology
regional dialects
how children learn to talk
the offside rule in football
marathon pacing
tennis scoring
the basic rules of cricket
VO2 max
the history of the Olympic Games
chess openings
baseball statistics
the physics of a curveball
rock-climbing grades
drafting in road cycling
the four competitive swimming strokes
the Pomodoro technique
agile project management
OKRs
negotiation
emotional intelligence
impostor syndrome
cognitive biases
confirmation bias
the sunk cost fallacy
the prisoner's dilemma
utilitarianism
stoicism
existentialism
the trolley problem
the separation of powers
ranked-choice voting
the electoral college
the United Nations
copyright and fair use
global supply chains
the gig economy
Maslow's hierarchy of needs
a growth mindset
the Dunning-Kruger effect
game theory
the waggle dance of honeybees
how trees share resources
monsoons
how deserts form
rainforests
coral reefs
wetlands
keystone species
invasive species
pollination
bird migration
why leaves change colour in autumn
permafrost
glaciers
river deltas
""")
EXPLAIN_T = L("""
Explain {c} to {aud}.
Explain {c} to {aud}.{x}
Can you explain {c} in a way that {aud} would understand?
How would you describe {c} to {aud}?
I need to explain {c} to {aud}. Can you help me put it into simple words?
Explain {c} in simple terms.{x}
Tell me about {c}.{x}
Give me an overview of {c}.{x}
Explain {c} using an everyday analogy.
What are the key ideas behind {c}?
Teach me the basics of {c}.{x}
Write a short explainer about {c} for {aud}.
I keep hearing about {c} but don't really get it. Could you break it down for me?
Summarize what {c} is about and give one real-world example.
Explain {c} in three short paragraphs: what it is, how it works, and why it matters.
What are the most common misconceptions about {c}?
If you had five sentences to explain {c}, what would you say?
How would a teacher introduce {c} to {aud}?
Describe {c} in plain English, then give a slightly more technical version.
My friend asked me about {c} and I couldn't answer. What should I have said?
Give me a beginner-friendly introduction to {c}, followed by three questions to test my understanding.
Why is {c} worth understanding? Keep the answer short.
Explain {c} as if you were a friendly museum guide.
Explain {c} like a sports commentator would.
What's a good way to remember how {c} works?
""")

HOWTO = L("""
keep basil alive on a windowsill
get rid of fruit flies in the kitchen
learn to cook without following recipes
negotiate a higher salary
ask my manager for a raise
prepare for my first marathon
start running as a complete beginner
save for a house deposit
pay off credit card debt faster
build an emergency fund
make my small flat feel bigger
clean a cast-iron pan
remove a red wine stain from a carpet
unclog a bathroom sink without harsh chemicals
fix a squeaky door hinge
train my puppy to walk on a lead
stop my cat from scratching the sofa
introduce a new cat to my dog
learn a new language as an adult
memorize vocabulary faster
stay motivated while learning the guitar
write a good CV
write a cover letter when changing careers
prepare for a video interview
give constructive feedback to a colleague
run an effective meeting
say no to extra work without damaging relationships
manage my time when working from home
stop procrastinating
build a daily reading habit
reduce my screen time
fall asleep faster
wake up earlier without feeling exhausted
drink more water during the day
eat more vegetables
meal prep for the whole week
bake bread at home
make fresh pasta by hand
cook rice properly on the stove
sharpen a kitchen knife
keep fresh herbs from wilting
plan a vegetable garden in a small backyard
grow tomatoes in containers
start composting in an apartment
lower my household energy bill
insulate an old house on a budget
choose a laptop for university
back up my photos safely
create strong passwords I can actually remember
spot a phishing email
speed up a slow computer
get good Wi-Fi coverage in every room
take better photos with my phone
start a podcast
learn to draw faces
start journaling
make friends in a new city
keep in touch with friends who live far away
deal with a noisy neighbour
apologize properly after an argument
support a friend who is grieving
talk to my kids about money
teach a child to ride a bike
help a teenager cope with exam stress
survive a long-haul flight in economy
beat jet lag
pack light for a two-week trip
travel around Europe on a tight budget
stay safe when travelling alone
plan a road trip with young children
choose a hiking backpack
prepare for moving to another country for work
start investing with a small amount of money
read my payslip
get organised for tax season
negotiate the rent with my landlord
choose between two job offers
improve my handwriting
become a better listener
speak up more in meetings
calm my nerves before a presentation
start meditating
get back into exercise after an injury
stretch after sitting at a desk all day
set up an ergonomic home office
clean my oven
organize a messy wardrobe
declutter my home
host a dinner party on a budget
plan a surprise party
pick a wine to go with dinner
brew good coffee at home
make cold brew coffee
care for a sourdough starter
propagate a pothos plant
prune a rose bush
attract birds to my garden
keep mosquitoes away without chemical sprays
learn to swim as an adult
get better at chess
get faster at mental arithmetic
learn touch typing
overcome writer's block
read more books this year
learn to code in my spare time
get my first job in tech
prepare for a coding interview
fix a flat bicycle tyre
jump-start a car
check my car's tyre pressure
drive more fuel-efficiently
reduce food waste at home
spend less on groceries
cut down on sugar
cut back on caffeine
cope with loneliness after moving
build self-confidence
recover from burnout
prepare for my first day at a new job
onboard a new team member
write clearer emails
mentor a junior colleague
handle criticism at work
resign from a job gracefully
start a small business from home
price my handmade crafts
grow an audience on social media
study more effectively for exams
take better notes in lectures
learn to juggle
paint a room without making a mess
hang a heavy mirror safely
fix a dripping tap
bleed a radiator
choose a houseplant for a dark room
repot a plant that has outgrown its pot
wash a wool jumper without shrinking it
iron a shirt quickly
remove rust from old tools
stop overthinking
set boundaries with my family
plan my week on Sunday evening
keep a tidy kitchen with a busy schedule
make my morning routine less rushed
prepare my garden for winter
keep my dog calm during fireworks
choose running shoes
avoid injuries when lifting weights
improve my posture at work
write a thank-you speech for a wedding
give a toast at my best friend's birthday
learn to play the piano as an adult
sing in tune
edit my own writing
make a simple website for my business
stay productive in the afternoon slump
""")
HOWTO_T = L("""
How do I {t}?
How can I {t}?{x}
What's the best way to {t}?
Any tips on how to {t}?
I want to {t}. Where do I start?
Give me a step-by-step guide to {t}.
What are common mistakes people make when they try to {t}?
I'm {p} and I'd like to {t}. What do you suggest?
As {p}, how should I {t}?
Explain how to {t} in {k} simple steps.
My friend asked me how to {t}. What should I tell them?
What do I need to know before I try to {t}?
I've tried and failed to {t} several times. What am I probably doing wrong?
Is there a quick way to {t}?{x}
What's a realistic plan to {t} within a month?
I'm {p}. Could you give me some practical advice on how to {t}?
""")

COMPARE = P("""
tea|coffee
renting a home|buying a home
Python|JavaScript
cats|dogs
running|cycling for fitness
e-books|printed books
a Roth IRA|a traditional IRA
electric cars|hybrid cars
baking soda|baking powder
butter|margarine
a credit card|a debit card
weather forecasts|climate projections
a crocodile|an alligator
a comet|an asteroid
mitosis|meiosis
an LLC|a sole proprietorship
SSD storage|hard disk drives
RAM|storage
a router|a modem
Android|iOS
Linux|Windows
TCP|UDP
SQL databases|NoSQL databases
static typing|dynamic typing
REST|GraphQL
agile|waterfall project management
a résumé|a CV
introverts|extroverts
stocks|bonds
saving|investing
term life insurance|whole life insurance
fixed-rate mortgages|variable-rate mortgages
a Kindle|a tablet for reading
yoga|Pilates
free weights|machines at the gym
cardio|strength training
a marathon|a half marathon
baroque music|classical-period music
impressionism|expressionism
poetry|prose
a novel|a novella
the Roman Republic|the Roman Empire
the causes of the First World War|the causes of the Second World War
capitalism|socialism
a parliamentary system|a presidential system
the House of Commons|the House of Lords
empathy|sympathy
affect|effect
who|whom
British English|American English
learning Spanish|learning French
Rome|Florence
Tokyo|Kyoto
a cruise|a road trip
a hostel|a hotel
travelling by train|flying within Europe
a gas hob|an induction hob
a slow cooker|a pressure cooker
an air fryer|an oven
espresso|filter coffee
green tea|black tea
olive oil|sunflower oil
white rice|brown rice
whole milk|oat milk
a hurricane|a tornado
a lake|a pond
frogs|toads
moths|butterflies
rabbits|hares
Venus|Mars
a solar eclipse|a lunar eclipse
nuclear fission|nuclear fusion
AC|DC electricity
a fever|hyperthermia
a cold|the flu
stress|anxiety
a psychologist|a psychiatrist
a nutritionist|a dietitian
walking|running
working at a startup|working at a large company
freelancing|full-time employment
a master's degree|work experience
public schools|private schools
paper maps|GPS navigation
email|instant messaging at work
open-plan offices|private offices
lions|tigers
chess|Go
football|rugby
tennis|badminton
skiing|snowboarding
oil paints|acrylic paints
film photography|digital photography
vinyl records|streaming music
a violin|a viola
a symphony|a concerto
democracy in ancient Athens|modern democracy
Stoicism|Epicureanism
deduction|induction
correlation|causation
mean|median
LED bulbs|incandescent bulbs
solar power|wind power
composting|landfill for food waste
a heat pump|a gas boiler
hardwood|softwood
""")
COMPARE_T = L("""
What's the difference between {a} and {b}?
Compare {a} and {b}.{x}
How does {a} differ from {b}?
Compare {a} with {b} in a short table.
Is {a} better than {b}? Give me a balanced answer.
Explain the key differences between {a} and {b} for {aud}.
What do {a} and {b} have in common, and how are they different?
{A} or {b}: which would you pick, and why?
I can never remember the difference between {a} and {b}. Can you help?
Give me three similarities and three differences between {a} and {b}.
""")

TIPS = L("""
ways to reduce food waste at home
ideas for a rainy afternoon with kids
tips for a first-time camper
conversation starters for a networking event
ways to make a long commute more enjoyable
ideas for a cheap date night
questions to ask a landlord before signing a lease
habits that help with concentration
healthy snacks to take to work
gift ideas for a friend who loves cooking
team-building activities for a remote team
names for a small neighbourhood bakery
blog post ideas about gardening
icebreaker games for a classroom
ways to stay cool in a heatwave without air conditioning
hobbies that cost almost nothing
ideas for a primary school science fair project
ways to practise gratitude
tips for looking after an elderly parent
ways to make a small balcony feel like a garden
things to do in a new city on your first weekend
questions to ask at the end of a job interview
ways to make a boring workout more fun
podcast episode ideas about personal finance
themes for a child's birthday party
ways to be more environmentally friendly at work
tips for writing a good wedding speech
ideas for using up leftover rice
things to check before buying a used car
tips for keeping a long-distance friendship strong
fun facts about octopuses
ways to improve the battery life of a phone
habits of people who manage money well
questions to help a team reflect at the end of a project
tips for staying productive in an open-plan office
ideas for a low-waste picnic
ways to teach kids about money
stretches for people who sit all day
ideas for a themed dinner party
ways to learn new words in a foreign language
simple ways to make a bedroom more relaxing
tips for a successful job fair
ideas for a community event in a small town
ways to encourage kids to read more
warm-up exercises before a run
tips for staying safe online
creative uses for an old glass jar
ways to reduce stress before an exam
things to include in a home first-aid kit
tips for photographing the night sky
questions to ask a doctor at a check-up
ideas for a YouTube channel about cooking
ways to make a presentation more engaging
tips for a smooth house move
activities for a family reunion
ways to save money on a wedding
tips for new gardeners
plants that are safe for cats
board games for a group of six adults
ideas for a relaxing Sunday at home
ways to make friends as an adult
tips for keeping houseplants alive in winter
ways to make weekday breakfasts faster
ideas for a short story plot
ideas for a fantasy world's magic system
questions to ask when adopting a rescue dog
tips for giving a good eulogy
ways to stay focused while reading
strategies for paying off student loans
tips for writing a clear bug report
ideas for a small business you can run on weekends
things to pack for a beach holiday with a baby
ways to calm down after a stressful day
tips for cycling to work in the rain
ways to make leftovers more exciting
tips for learning to knit
ideas for a sensory activity for toddlers
tips for a first visit to a climbing gym
ways to brighten up a rented flat without damaging the walls
signs that it's time to replace running shoes
tips for hosting a book club
ideas for a garden party menu
tips for writing a personal statement for university
ways to improve your memory
classic novels for someone who doesn't usually read
ideas for a meaningful anniversary gift
things to do on a long train journey
ways to support local businesses
tips for being a good houseguest
tips for a toddler's first haircut
questions to ask a financial adviser
ways to cut down on plastic in the bathroom
indoor activities for an energetic dog
tips for writing a product description that sells
slogans for a charity fun run
ideas for a children's book about space
ways to welcome a new neighbour
tips for reading more critically
topics for a five-minute talk at work
ideas for volunteering on a weekend
tips for travelling with a dog
things to know before getting chickens
tips for learning to ice skate
ideas for a photo walk in the city
tips for managing a shared household budget
ways to use a slow cooker in summer
tips for a calm bedtime routine for kids
mistakes to avoid when starting a blog
ideas for a retro-themed party
exercises to improve balance
ways to make a cheap meal feel special
tips for surviving the first week with a newborn
""")
TIPS_T = L("""
Give me {k} {t}.
List {k} {t}.
Can you suggest {k} {t}?
I need some {t}. Give me {k}, with a sentence on each.
Brainstorm {k} {t}.
What are some {t}?{x}
Come up with {k} original {t}.
Share {k} {t}, ordered from easiest to hardest.
Please list {k} {t} and explain why each one works.
Quick list: {k} {t}.
""")

CREATIVE_SUBJECTS = L("""
a lighthouse keeper's last night on duty
the first snowfall of winter
a robot learning to bake bread
an old bicycle in a garden shed
a city waking up at dawn
a lost umbrella on a train
the smell of rain on hot pavement
a cat who believes it is a dog
a library at midnight
a grandmother's recipe book
a seed that is afraid to grow
the last day of summer holidays
a message in a bottle
a dragon who is scared of the dark
two strangers sharing a park bench
a town where it never stops raining
a clock that runs backwards
a fisherman and the sea
a tree that has stood for five hundred years
a child's first day at school
the Moon feeling lonely
a runaway kite
an astronaut looking back at Earth
a bakery at four in the morning
a forgotten toy in an attic
friendship between a fox and a crow
a street musician
a snowman in spring
the night before an exam
a house full of plants
the ocean at night
a mountain village cut off by snow
a bus driver who knows everyone's story
a detective who can talk to animals
a shy ghost
a garden after a storm
a penguin who wants to fly
an old photograph found in a book
the sound of a train in the distance
a small boat in a big storm
a cup of tea on a cold morning
learning to ride a bike
the first human colony on Mars
a magical door in an ordinary office
a time traveller stuck in a supermarket
autumn leaves
a quiet Sunday morning
moving to a new country
a pet goldfish with big dreams
a museum statue that comes alive at night
the hum of a city at night
a farmer waiting for rain
a letter that arrives fifty years late
the first bee of spring
a chess game between two old friends
a stray dog who finds a home
a shipwreck at the bottom of the sea
a kid who can't stop asking why
a phone that only receives calls from the future
a thunderstorm over the sea
a grandfather teaching a child to fish
a busy airport at night
a wizard who forgot his spells
the Northern Lights
an empty playground
a song that everybody remembers but no one can name
a robot gardener
the smell of fresh coffee
an owl keeping watch over a forest
the last bookshop in town
a firefly lost in the city
a river that changes its course
a cake that went very wrong
the joy of a long walk
a friendship that survives a long distance
a squirrel planning for winter
a dinosaur in the modern world
a village festival
climbing a mountain at sunrise
a knight who would rather be a poet
a train that only runs at night
the first cup of coffee on Monday
a snail in a hurry
a treehouse built by three friends
a haunted lighthouse
an unexpected friendship at work
homesickness
hope after a long winter
a grumpy neighbour with a secret
the sea in winter
a family road trip that goes wrong
a city of talking cats
a baker's apprentice
the silence after snowfall
a forgotten birthday
a message from an alien civilisation
the courage to start again
a whale singing in the deep
a kite festival on the beach
a clockmaker's workshop
a rainy day in Paris
a village without electricity
""")
GENRES = ["mystery", "science-fiction", "fantasy", "funny", "heartwarming", "spooky", "historical", "adventure",
          "bittersweet", "fairy-tale"]
TONES = ["hopeful", "melancholic", "playful", "calm", "nostalgic", "dramatic", "gentle", "humorous", "mysterious"]
DIALOGUE_PAIRS = L("""
a barista and a time traveller
a detective and a parrot who witnessed a crime
two astronauts on Mars
a grandmother and her grandson
a job interviewer and a very honest candidate
a teacher and a student who forgot their homework
a customer and a tech support agent
Socrates and a modern teenager
a chef and a food critic
the Sun and the Moon
a lion and a mouse
a ghost and the new owner of its house
two pigeons on a city rooftop
a robot and the engineer who built it
a shopkeeper and a customer who wants to return a used toothbrush
a librarian and a dragon
two rival gardeners
a tourist and a local who gives confusing directions
a dog and a cat sharing a sofa
a pilot and a nervous first-time flyer
an alien and a farmer
a coach and a player before a final
two old friends meeting after twenty years
a plant and the person who keeps forgetting to water it
a superhero and their accountant
""")
DIALOGUE_TOPICS = ["", "", "", " about the meaning of home", " about whether pineapple belongs on pizza",
                   " about a missing sandwich", " about the weather", " about a big decision", " about growing up",
                   " about what makes a good friend", " about the future", " about a strange noise in the night"]
CREATIVE_T = L("""
Write a haiku about {s}.
Write a short poem about {s}.
Write a {tone} poem about {s}.
Write a limerick about {s}.
Write a sonnet about {s}.
Write a free-verse poem about {s}, in no more than twelve lines.
Write a very short story, under {w} words, about {s}.
Write a {genre} story about {s} in about {w} words.
Write a fable about {s} that ends with a moral.
Write a dialogue between {pair}{dt}.
Write a short scene with dialogue between {pair}{dt}.
Write the opening paragraph of a {genre} novel about {s}.
Write song lyrics, one verse and a chorus, about {s}.
Write a bedtime story for a {age}-year-old about {s}.
Write a short diary entry from the point of view of {pair2}.
Write a four-line rhyming poem about {s} for a greeting card.
Write a story about {s} in exactly six sentences.
Write a {tone} piece of flash fiction about {s}.
Describe {s} using all five senses.
Write a short monologue from {pair2}.
Write a children's picture-book text about {s}, with one short paragraph per page.
Write a poem about {s} that doesn't rhyme.
Write a story that begins with the sentence "{opener}"
Continue this story in about {w} words: "{opener}"
""")
STORY_OPENERS = L("""
Nobody in the village had ever seen the door open before.
The letter arrived on a Tuesday, which was the first strange thing.
When the power went out, the house started to hum.
She had exactly one hour to find the missing key.
The robot had never been asked what it wanted.
It was the coldest morning the town had seen in a hundred years.
The map was wrong, and that was the best thing that ever happened to us.
Every night at nine, the old man on the corner fed the pigeons.
The train stopped in the middle of nowhere, and the conductor smiled.
My grandmother kept a locked box under her bed for sixty years.
The cat came back wearing a tiny blue collar that wasn't ours.
On the first day of spring, the snow turned pink.
He had practised the speech a hundred times, but not for this audience.
The last message on the ship's log made no sense at all.
The bakery on Elm Street never closed, not even on Christmas.
""")

MESSAGE_SITUATIONS = P("""
f|to my landlord asking them to fix a leaking tap
f|to a colleague thanking them for covering my shift
f|to my team announcing that I'm leaving the company
f|to a customer apologizing for a late delivery
f|to a professor asking for an extension on an essay
i|to a friend congratulating them on their new baby
i|to a friend declining their wedding invitation politely
f|to my manager asking to work from home two days a week
f|to a hiring manager following up after an interview
f|to a client reminding them about an unpaid invoice
f|to a recruiter turning down a job offer
i|to my neighbours inviting them to a summer barbecue
i|to an old friend I haven't spoken to in years
f|to a hotel asking for an early check-in
f|to the school explaining that my child will be absent for a family event
f|to a company complaining about a faulty washing machine
f|to a supplier asking for a better price on a bulk order
f|to a new team member welcoming them to the team
f|to my team summarizing the decisions from today's meeting
i|to my sister apologizing for missing her birthday dinner
i|to a friend who just lost their job
f|to a mentor thanking them for their advice over the years
f|to a conference organizer proposing a talk
f|to the council reporting a broken streetlight
f|to my bank disputing a charge on my statement
i|to my housemates about keeping the kitchen clean
f|to a potential landlord asking to view a flat
f|to my manager explaining that a project will be two weeks late
f|to a journalist asking for a correction to an article
f|to a volunteer group asking for help at a charity event
i|to my parents telling them I'm moving abroad
f|to a colleague asking for feedback on a presentation
f|to a customer announcing a price increase
i|to a friend asking to borrow their car for the weekend
f|to a doctor's surgery asking to reschedule an appointment
f|to a university admissions office asking about scholarships
f|to a plumber asking for a quote
i|to my partner's parents thanking them for hosting us
f|to a team explaining a new expense policy
f|to a former colleague asking for a reference
i|to a neighbour whose dog barks all night
f|to a gym cancelling my membership
f|to the organizers of a run thanking them for a great event
i|to my book club suggesting the next book
f|to a company asking whether they have any internships
f|to my team celebrating the launch of a new product
f|to a supplier cancelling an order
i|to a friend who helped me move house
f|to a restaurant booking a table for a party of twelve
f|to a customer who left a negative review
f|to an airline requesting a refund for a cancelled flight
i|to my grandmother thanking her for a birthday present
f|to a teacher thanking them at the end of the school year
f|to a software vendor reporting a bug in their app
i|to a friend inviting them to a board game night
f|to a landlord giving notice that I'm moving out
f|to my manager asking for a training budget
i|to a group chat organizing a weekend hiking trip
f|to a new client introducing my design studio
f|to a charity offering to volunteer on Saturdays
f|to my landlord asking for permission to get a cat
f|to a colleague handing over my projects before parental leave
f|to a customer explaining a delay caused by a supplier
f|to my manager requesting a day off for a family wedding
f|to a local newspaper's editor about the lack of cycle paths in town
f|to a museum asking whether they offer group discounts for schools
f|to a tenant reminding them that the rent is overdue
f|to the organizers of a conference asking for a refund
f|to my team introducing a new weekly planning meeting
f|to a candidate inviting them to a second interview
f|to a candidate letting them know they weren't selected
f|to a client summarizing what we agreed on in today's call
f|to a speaker thanking them for a talk at our event
f|to my child's teacher asking for a meeting about homework
f|to the building manager about a broken lift
i|to a friend wishing them luck before their driving test
i|to my brother asking whether he can help me move next Saturday
i|to a friend cancelling dinner plans at the last minute
i|to a neighbour thanking them for taking in a parcel
i|to a friend who is recovering from surgery
i|to my cousin congratulating her on her graduation
i|to an old teacher telling them how much their lessons meant to me
i|to my flatmates suggesting a cleaning rota
i|to a friend inviting them to go hiking next weekend
i|to my partner apologizing for forgetting our anniversary
""")
MESSAGE_FORMS = {"f": ["an email", "an email", "a polite email", "a formal letter", "a brief email", "a short message",
                       "a professional email"],
                 "i": ["a text message", "a short message", "an email", "a WhatsApp message", "a card message",
                       "a warm note", "a casual email"]}
MESSAGE_TONES = ["warm but professional", "friendly", "polite and firm", "short and to the point", "apologetic",
                 "cheerful", "respectful", "light-hearted", "sincere", "formal"]
MESSAGE_T = L("""
Write {form} {sit}.
Draft {form} {sit}. Keep it {tone}.
Help me write {form} {sit}.
Can you write {form} {sit}?{x}
I need to send {form} {sit}. What should it say?
Write {form} {sit}. The tone should be {tone}.
Please draft {form} {sit}, in under {w} words.
Compose {form} {sit}. Make it sound {tone}.
""")

# --- passages built from templates, to summarize or rewrite ---------------------------------------
TOWNS = ["Millbrook", "Ashford", "Riverton", "Eastwick", "Port Allen", "Kingsley", "Oakridge", "Lower Denham",
         "Fairhaven", "Bramley", "Westmoor", "Clearwater", "Hollins Bay", "Stonebridge"]
NEWS = P("""
build a new cycle lane along the high street|cut congestion and make cycling safer for children|the lane will encourage more people to leave their cars at home|it will remove forty parking spaces that local shops depend on
extend the opening hours of the public library|give students and shift workers a quiet place to study in the evening|libraries are one of the few free indoor spaces left|the money would be better spent on repairing roads
replace all the town's streetlights with LED lamps|halve the electricity bill for street lighting|the lamps will pay for themselves within six years|the brighter light could disturb wildlife and residents
turn an empty car park into a community garden|provide fresh vegetables and a meeting place for residents|the garden will bring neighbours together|the town is already short of parking
introduce a weekly farmers' market in the town square|support local growers and bring visitors to the centre|the market will help small farms survive|it will compete with existing shops
close the old swimming pool and build a larger leisure centre|offer a modern pool, a gym and space for clubs|the old pool is too expensive to repair|the new centre will be too far for elderly residents to walk to
ban single-use plastic bags in all shops|reduce litter in parks and along the river|the ban has worked well in neighbouring towns|small shops will face higher costs
launch a free evening bus service for students|help young people get home safely from college and part-time jobs|it will reduce the number of people driving at night|the buses may run half-empty
plant two thousand trees over the next three years|provide shade and improve air quality|trees make streets cooler in summer|some of the planting sites are needed for housing
convert a disused factory into affordable flats|create around ninety homes for local families|young people are being priced out of the area|the site is next to a busy road
install public water fountains in every park|reduce plastic bottle use and help people stay hydrated|the fountains are cheap to maintain|they could be vandalised
create a car-free zone around the primary school at drop-off times|make the school gates safer and cleaner|children will be able to walk and cycle to school|parents who drive to work will be inconvenienced
""")
NEWS_T = ("{town} council voted on {day} to {dec}. The plan, which will cost about {cost}, is meant to {eff}. "
          "Supporters say {sup}. Critics argue that {crit}. Work is due to start in {month}.")
PRODUCTS = P("""
a cordless vacuum cleaner|It is light enough to carry upstairs with one hand.|The suction is strong on hard floors.|the battery only lasts about twenty minutes on carpet
a pair of noise-reducing earbuds|They are comfortable even after a few hours.|The sound is clear and the bass is surprisingly good.|the case scratches easily and the touch controls are too sensitive
an electric kettle with temperature control|It boils water in under two minutes.|Being able to choose the temperature is great for green tea.|the lid is stiff and hard to open
a budget fitness tracker|The step counter seems accurate.|The app is simple and easy to use.|the heart-rate readings jump around during exercise
a folding bike|It folds in about ten seconds and fits under my desk at work.|It rides better than I expected on city streets.|it is heavy to carry up stairs and the small wheels struggle on potholes
a stand mixer|It handles bread dough without any trouble.|The bowl is big enough for a double batch of cookies.|it is loud and takes up a lot of counter space
a waterproof hiking jacket|It kept me completely dry during a full day of rain.|The pockets are well placed and easy to reach with a backpack on.|it gets warm and sweaty on uphill sections
a robot lawnmower|Setting up the boundary wire took an afternoon, but it has been easy since.|The lawn has never looked so even.|it gets stuck on the slope near the fence about once a week
an e-reader|The screen is easy to read in bright sunlight.|The battery lasts for weeks.|the built-in store keeps pushing recommendations I don't want
a smart thermostat|It learned our schedule within a week.|Our heating bill dropped noticeably in the first month.|the app occasionally loses connection and the setup instructions were confusing
""")
REVIEW_AGO = ["two weeks ago", "about a month ago", "three months ago", "last spring", "six months ago", "in January"]
REVIEW_VERDICT = L("""
Overall, I would recommend it, but only if you can get it on sale.
All in all, it does the job, although I expected a bit more for the price.
I'd give it four stars out of five.
It's not perfect, but I use it every day and wouldn't go back.
For the price, it's hard to beat.
I'm happy with it, but I would think twice before buying it again.
""")
ANECDOTES = P("""
tried to bake a birthday cake for my daughter|the oven stopped working halfway through|I finished it in my neighbour's kitchen, and she ended up staying for the party
went hiking with two friends on a trail we had never done before|we took a wrong turn and lost the path for almost an hour|a local farmer pointed us back in the right direction and even gave us apples
decided to repaint the living room myself|I realised too late that I had bought the wrong shade of green|we kept it, and now everyone who visits says it's their favourite room
took the train to visit my grandparents|the train was cancelled and the next one was three hours later|I spent the time talking to a retired engineer who told me amazing stories
signed up for my first ever 10k race|it started pouring with rain just before the start|I finished in just over an hour, soaked but very proud
tried to set up a new printer for my parents|it refused to connect to their Wi-Fi|after an hour of trying everything, we discovered the router was switched off
organized a picnic for my team|half of the food was left at the office|we ordered pizza to the park and it turned into the best team event of the year
started learning to play the guitar|my fingers hurt so much after the first week that I almost gave up|a friend showed me some easier chords, and now I practise every evening
volunteered at a local food bank|there were far more people than the organizers had expected|everyone worked an extra hour and nobody went home without a bag of groceries
went to a job interview in a new city|I got lost and arrived ten minutes late|I apologized, stayed calm and, to my surprise, got the job
""")
ANECDOTE_REFLECT = ["", "", "Looking back, it was a good lesson in patience.", "I still laugh about it.",
                    "It taught me that plans rarely go the way you expect.", "I would do it all again."]
NOTES_ITEMS = L("""
launch date moved from {m1} to {m2}
budget for next quarter approved at {cur}{n1},000
{name} to send the updated designs by {day}
customer feedback: the sign-up process is confusing
two new roles to be advertised next week
office closed on the last {day} of {m1} for maintenance
need volunteers for the open day
survey response rate was {p}%, lower than last year
{name} will lead the new onboarding project
move the weekly meeting from {day} to {day2}
server costs up {p}% since {m1}
agreed to trial a four-day week for the support team
next review meeting on {day} at {h}pm
new expense policy starts in {m2}
website redesign is two weeks behind schedule
{name} asked everyone to update their holiday plans in the shared calendar
""")
SCIENCE_BLURBS = L("""
Honeybees communicate the location of food through a movement called the waggle dance. A forager returns to the hive and moves in a figure-of-eight pattern. The angle of the straight part of the dance shows the direction of the food relative to the sun, and the length of the waggle shows how far away it is. Other bees follow the dancer closely and then fly out to find the flowers themselves.
Tides are caused mainly by the gravitational pull of the Moon. The Moon pulls slightly harder on the side of the Earth that faces it, creating a bulge of water. A second bulge forms on the opposite side. As the Earth rotates through these bulges, most coasts experience two high tides and two low tides every day. The Sun also affects tides, which is why some tides are larger than others.
Bread rises because of yeast, a tiny fungus. When yeast feeds on the sugars in flour, it produces carbon dioxide gas and alcohol. The gluten in the dough forms a stretchy network that traps the gas, so the dough expands. During baking, the heat kills the yeast, the alcohol evaporates and the structure sets, leaving the soft, airy texture we expect from bread.
The ozone layer is a region of the upper atmosphere that absorbs most of the Sun's harmful ultraviolet radiation. In the twentieth century, chemicals called CFCs, used in fridges and aerosol sprays, began to thin it. After the Montreal Protocol banned these chemicals in 1987, the ozone layer slowly started to recover, and scientists expect it to heal over the coming decades.
Octopuses are remarkable problem solvers. They can open jars, escape from tanks and use coconut shells as portable shelters. Most of their neurons are in their arms rather than their brain, which means each arm can react to its surroundings on its own. They can also change the colour and texture of their skin in a fraction of a second to hide from predators.
Lightning forms when ice particles and water droplets collide inside a storm cloud, separating electric charges. The top of the cloud becomes positively charged and the bottom negatively charged. When the difference becomes large enough, electricity jumps through the air as a giant spark. The air around the bolt heats up so quickly that it expands explosively, producing the sound we call thunder.
Deserts are not always hot. A desert is any area that receives very little rain, usually less than 250 millimetres a year. Antarctica is actually the largest desert on Earth. Many hot deserts form in bands around thirty degrees north and south of the equator, where dry air sinks and prevents clouds from forming.
The printing press, developed by Johannes Gutenberg around 1440, used movable metal type to print pages quickly. Before it, books were copied by hand and were rare and expensive. Within a few decades, printing presses had spread across Europe, books became cheaper, literacy rose, and new ideas travelled faster than ever before.
Vaccines train the immune system to recognise a germ without causing the disease. They contain a harmless piece or weakened form of the germ, or instructions for making one of its proteins. The body responds by producing antibodies and memory cells. If the real germ appears later, the immune system can respond much faster and more strongly.
Compound interest means earning interest on your interest. If you save money at a fixed rate, the interest added each year is calculated on the original amount plus all the interest already earned. Over long periods this makes savings grow much faster than simple interest, which is why starting to save early makes such a big difference.
""")
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

DEFINE_WORDS = L("""
ephemeral
serendipity
ubiquitous
pragmatic
resilience
nostalgia
ambiguous
meticulous
eloquent
cognitive dissonance
paradigm
quintessential
empathy
procrastination
altruism
benevolent
candid
diligent
frugal
gregarious
hubris
juxtaposition
laconic
mellifluous
nuance
obsolete
paradox
plausible
rhetoric
sanguine
tenacious
transient
verbose
whimsical
zeitgeist
catharsis
dichotomy
epiphany
euphemism
hyperbole
irony
melancholy
onomatopoeia
pedantic
sarcasm
schadenfreude
stoic
utopia
wanderlust
hygge
ennui
cacophony
sonder
petrichor
liminal
inertia
entropy
photosynthesis
metabolism
algorithm
bandwidth
latency
encryption
inflation
liquidity
equity
dividend
amortization
collateral
fiduciary
arbitrage
biodiversity
sustainability
carbon footprint
circular economy
gentrification
globalization
meritocracy
bureaucracy
filibuster
gerrymandering
habeas corpus
due diligence
intellectual property
placebo
homeostasis
antibody
epidemic
pandemic
endemic
mindfulness
burnout
gaslighting
echo chamber
confirmation bias
cognitive load
flow state
minimalism
umami
al dente
mise en place
terroir
sous vide
crescendo
syncopation
chiaroscuro
trompe l'oeil
haiku
allegory
protagonist
foreshadowing
""")
IDIOMS = L("""
break the ice
bite the bullet
the ball is in your court
hit the nail on the head
under the weather
spill the beans
let the cat out of the bag
once in a blue moon
cost an arm and a leg
a blessing in disguise
call it a day
cut corners
get out of hand
hang in there
miss the boat
on thin ice
pull someone's leg
the best of both worlds
the elephant in the room
throw in the towel
burn the midnight oil
back to square one
barking up the wrong tree
a piece of cake
every cloud has a silver lining
kill two birds with one stone
let sleeping dogs lie
actions speak louder than words
don't count your chickens before they hatch
the early bird catches the worm
bite off more than you can chew
beat around the bush
go the extra mile
jump on the bandwagon
keep your chin up
in hot water
add fuel to the fire
when pigs fly
cry over spilt milk
the tip of the iceberg
""")
DEFINE_T = L("""
What does "{w}" mean?
Define the word "{w}" and use it in a sentence.
What is the meaning of "{w}"? Give two example sentences.
Explain the term "{w}" and give a synonym if there is one.
What does "{w}" mean, and where does the word come from?
Explain "{w}" to {aud}.
Give me a few example sentences that use "{w}".
Give me a simple definition of "{w}" and a common way it is misused.
""")
IDIOM_T = L("""
What does the idiom "{i}" mean?
What does "{i}" mean, and where does the expression come from?
Use "{i}" in three different sentences and explain what it means.
Explain the expression "{i}" to someone who is learning English.
Is there a more formal way to say "{i}"?
""")

PROSCONS = L("""
working from home
buying an electric car
living in a big city
homeschooling
using a credit card for everyday purchases
nuclear power
standing desks
social media for teenagers
a four-day work week
renting out a spare room
learning two languages at the same time
taking a gap year before university
adopting a rescue dog
living with roommates
open-plan offices
self-driving cars
school uniforms
buying a house with friends
working for a startup
becoming a freelancer
intermittent fasting
a vegetarian diet
getting a smartwatch
moving to the countryside
studying abroad
having a joint bank account
paying off a mortgage early
leasing a car instead of buying one
solar panels on a house
using public transport instead of driving
online degrees
tiny houses
smart home devices
cashless payments
letting children have smartphones
keeping chickens in the back garden
daylight saving time
tipping culture
homework in primary school
unlimited holiday policies
co-working spaces
remote-first companies
retiring early
buying second-hand clothes
travelling in the off-season
all-inclusive holidays
cruises
camping holidays
electric scooters in cities
banning cars from city centres
year-round schooling
a universal basic income
congestion charges
nuclear families versus multigenerational households
learning to code as a child
competitive sports for young children
playing video games as a hobby
reading on a screen instead of paper
getting a pet as a family
wearing a fitness tracker
keeping a budget spreadsheet
index fund investing
buying extended warranties
a gap between jobs
going back to school as an adult
joining a gym versus working out at home
having a side hustle
being your own boss
""")
PROSCONS_T = L("""
What are the pros and cons of {s}?
Give me a balanced list of the advantages and disadvantages of {s}.
Weigh up the pros and cons of {s}.{x}
List the advantages and disadvantages of {s} in a table.
Make the case for and against {s}, then give your overall view.
Argue for and against {s} in two short paragraphs.
What are the main benefits and risks of {s} for {who}?
Help me make up my mind about {s}: what are the strongest arguments each way?
""")
PROSCONS_WHO = ["families", "students", "small businesses", "retirees", "young professionals", "people on a budget",
                "the environment", "people living alone"]

DESTINATIONS = L("""
Lisbon
Barcelona
Rome
Paris
Amsterdam
Berlin
Prague
Vienna
Budapest
Copenhagen
Stockholm
Edinburgh
Dublin
the Scottish Highlands
Iceland
Norway's fjords
Tokyo
Kyoto
Seoul
Bangkok
Hanoi
Bali
Singapore
Sydney
Melbourne
New Zealand's South Island
Cape Town
Marrakech
Cairo
Istanbul
Athens
the Greek islands
Sicily
Tuscany
the Amalfi Coast
Provence
Seville
Porto
Kraków
Croatia's Dalmatian coast
New York City
Chicago
San Francisco
New Orleans
Vancouver
Montreal
Mexico City
Oaxaca
Costa Rica
Peru
Buenos Aires
Rio de Janeiro
Patagonia
the Swiss Alps
the Lake District
Cornwall
the Dolomites
Japan's countryside
Vietnam
Sri Lanka
Kerala
Jordan
Morocco
Tanzania
Kenya
""")
TRAVELLERS = ["a couple", "a family with two young kids", "a solo traveller", "a group of friends in their twenties",
              "two retirees who love museums", "a family with teenagers", "a couple on their honeymoon",
              "a student backpacker", "someone who uses a wheelchair", "three friends who love food"]
TRIP_EXTRAS = ["", "", " on a modest budget", " on a tight budget", " with a generous budget", " who love hiking",
               " interested in history", " who want a relaxed pace", " who don't drive", " who love street food"]
TRIP_T = L("""
Plan a {d}-day trip to {dest} for {who}{ex}.
I'm visiting {dest} for {d} days in {month} with {who2}. Can you suggest an itinerary?
Create a day-by-day itinerary for {d} days in {dest} for {who}{ex}.
What should a first-time visitor to {dest} not miss in {d} days?
Help me plan {d} days in {dest} in {month}. We are {who}{ex}.
Suggest a rough budget and plan for a {d}-day trip to {dest} for {who}.
""")
DIETS = ["is vegan", "wants to eat more protein", "avoids gluten", "is trying to lose weight", "has a nut allergy",
         "only has time to cook on weekends", "is training for a marathon", "doesn't like spicy food",
         "is pregnant", "has type 2 diabetes", "eats fish but no meat", "is on a student budget",
         "wants to eat less processed food", "is lactose intolerant", "has a very small kitchen"]
MEAL_WHO = ["someone", "a busy nurse", "a teenager", "my dad", "a retired man", "a student", "an office worker",
            "my grandmother", "a keen cyclist"]
INGREDIENTS = L("""
chickpeas
spinach
eggs
leftover rice
a can of tomatoes
lentils
sweet potatoes
chicken thighs
tofu
feta cheese
courgettes
mushrooms
frozen peas
pasta
potatoes
carrots
a tin of tuna
coconut milk
bread that's going stale
bananas
oats
Greek yoghurt
cauliflower
broccoli
black beans
rice noodles
halloumi
onions
peppers
salmon
minced beef
cabbage
apples
peanut butter
tortillas
quinoa
""")
DISHES = L("""
a vegetable curry
a classic tomato pasta sauce
banana bread
a simple risotto
pancakes
a lentil soup
a stir-fry with tofu
shakshuka
a chicken traybake
homemade pizza dough
a Greek salad
a chocolate mug cake
guacamole
a vegetable lasagne
fish tacos
hummus
a spinach and feta pie
chili con carne
apple crumble
a Thai green curry
French onion soup
a Spanish omelette
pad thai
a mushroom stroganoff
a simple loaf of white bread
oat cookies
a quiche
a potato gratin
a berry smoothie bowl
carrot cake
""")
WORKOUT_GOALS = ["build strength", "lose some weight", "run a 5k without stopping", "improve flexibility",
                 "get better at push-ups", "improve my posture", "build endurance for hiking", "tone up",
                 "get back into shape after having a baby", "improve balance", "prepare for a skiing trip",
                 "increase my energy levels"]
WORKOUT_LEVELS = ["a complete beginner", "someone who exercises occasionally", "a fairly fit person",
                  "a 55-year-old", "a busy parent", "someone with bad knees"]
EQUIPMENT = ["no equipment", "a pair of dumbbells", "resistance bands", "a full gym", "a kettlebell",
             "just a yoga mat"]
SKILLS = L("""
Spanish
basic Python programming
the piano
drawing
statistics
public speaking
photography
the history of art
Japanese
cooking healthy meals
chess
touch typing
Excel
calculus
machine learning
writing fiction
the guitar
SQL
personal finance
first aid
""")
EVENTS = ["a birthday party for a seven-year-old", "a small wedding for fifty guests", "a retirement party",
          "a neighbourhood street party", "a baby shower", "a team offsite for twelve people", "a charity bake sale",
          "a games night for ten friends", "a graduation party", "a school reunion", "an outdoor movie night",
          "a surprise fortieth birthday"]
PLAN_KINDS = ["trip", "trip", "trip", "meal", "meal", "cook", "cook", "recipe", "workout", "workout", "study", "budget",
              "event"]

QUESTIONS = L("""
Why is the sky blue?
Why do onions make you cry?
How do aeroplanes stay in the air?
Why does bread go stale?
How do bees make honey?
Why do we dream?
Why is sea water salty?
How do fish breathe underwater?
Why do cats sleep so much?
Why do we get goosebumps?
How does a compass work?
Why does ice float?
What causes the northern lights?
How do submarines dive and surface?
Why do leaves fall off trees in autumn?
How does a fridge keep things cold?
Why do we yawn?
How do birds know where to migrate?
Why is the ocean blue?
How do solar panels turn sunlight into electricity?
What makes popcorn pop?
Why do we have different blood types?
How does a credit card payment actually go through?
Why do some people need glasses?
How does a touchscreen know where I tap?
Why do stars twinkle?
What happens to the body when we sleep?
How do hot air balloons work?
Why does the Moon look bigger near the horizon?
Why does coffee keep us awake?
How does sound travel?
Why do we have leap years?
How do vaccines get tested before approval?
How are rainbows formed?
How do elections get counted?
Why do we have time zones?
How do trees grow so tall?
Why do some animals hibernate?
How does the stock market decide prices?
Why is it colder at the top of a mountain?
How do glaciers move?
Why do we hiccup?
How do muscles get stronger?
Why do metals feel colder than wood at the same temperature?
How does a microwave heat food?
Why do cuts heal?
How does GPS know where I am?
Why do bicycles stay upright when moving?
How are diamonds formed?
How does a bill become a law?
Why do babies cry so much?
Why do dogs wag their tails?
How does recycling actually work?
How does the heart pump blood?
Why is chocolate toxic to dogs?
Why is Pluto no longer called a planet?
How do clouds form?
Why does a spoon look bent in a glass of water?
What makes thunder so loud?
How did people tell the time before clocks?
Why do we celebrate New Year on the first of January?
How was the Great Wall of China built?
Why did the Titanic sink?
How did ancient sailors navigate?
Why do different languages have different alphabets?
How are new words added to the dictionary?
How do mobile phones connect to each other?
Why does the Earth have a magnetic field?
How do antibiotics kill bacteria?
How does a dishwasher clean dishes?
Why do some foods taste better the next day?
Why do we feel tired after a big meal?
How do plants know which way is up?
Why does the Leaning Tower of Pisa lean?
How do bridges hold so much weight?
Why do we shiver when we're cold?
How do chameleons change colour?
Why do wounds itch as they heal?
How do noise levels affect our health?
Why do musicians tune their instruments before a concert?
How does a camera focus?
Why does salt melt ice on roads?
How did the dinosaurs go extinct?
Why do we have fingerprints?
How do lighthouses work?
Why are flamingos pink?
What makes a good cup of tea?
How do escalators work?
Why do boats float even though they are made of steel?
""")
QUESTION_X = ["", "", "", " Keep it short.", " Explain it like I'm five.", " Give the scientific explanation.",
              " Please answer in a few sentences.", " I'd like a detailed answer.", " Use an analogy if you can."]
HIST_EVENTS = L("""
the fall of the Berlin Wall
the Industrial Revolution
the Black Death
the Apollo 11 moon landing
the signing of the Magna Carta
the invention of the printing press
the fall of Constantinople in 1453
the voyages of Zheng He
the building of the Panama Canal
the Meiji Restoration
the American Revolution
the partition of India
the end of apartheid in South Africa
the first powered flight by the Wright brothers
the discovery of penicillin
the Cuban Missile Crisis
the Great Fire of London
the unification of Germany
the collapse of the Soviet Union
the construction of the Great Wall of China
the eruption of Mount Vesuvius in 79 AD
the Scientific Revolution
the rise of the Aztec Empire
the invention of the telephone
the first Olympic Games of the modern era
the Renaissance in Florence
the spread of the Silk Road
the women's suffrage movement in Britain
the creation of the World Wide Web
the Norman conquest of England
""")
HIST_T = L("""
Why was {e} important?
What were the main consequences of {e}?
Give me a short timeline of {e}.
Who were the key people involved in {e}?
Describe {e} in a few paragraphs for {aud}.
What led up to {e}?
What is a common myth about {e}?
Explain {e} as if you were writing a short encyclopedia entry.
""")

ADVICE = L("""
My roommate keeps eating my food and I don't know how to bring it up.
I've been offered a promotion, but it means moving to another city away from my friends.
My best friend didn't invite me to her wedding and I'm hurt.
I want to change careers at 35 but I'm scared of starting over.
My teenage son spends all night gaming and is tired at school.
My manager keeps giving me tasks at 5pm on Fridays.
I lent a friend money six months ago and they haven't mentioned paying it back.
I feel like I'm falling behind compared to people my age.
My parents want me to study medicine, but I love graphic design.
I've been procrastinating on my thesis for weeks.
My colleague takes credit for my work in meetings.
I can't decide whether to adopt a dog while living in a small flat.
My neighbours have loud parties every weekend.
I got a bad performance review and I feel demotivated.
I'm nervous about meeting my partner's family for the first time.
My friend group is planning an expensive holiday I can't afford.
I keep saying yes to things and now I'm exhausted.
I want to ask for feedback from my boss but I'm afraid of the answer.
My elderly mother refuses to stop driving even though it isn't safe anymore.
I've just moved to a new city and I don't know anyone.
My flatmate and I disagree about how warm to keep the heating.
I have two job offers: one pays more, the other is more interesting.
I keep forgetting to reply to messages and my friends are annoyed.
I'd like to quit social media but I'm worried about missing out.
My sister always asks me to babysit at the last minute.
I was accidentally rude to a colleague and I feel awful about it.
I want to start exercising but I always give up after a week.
My small business has a few customers who never pay on time.
My partner and I can't agree on where to spend the holidays.
I'm a new team lead and one of my reports used to be my peer.
I don't enjoy my university course but I'm halfway through.
My dog barks every time someone walks past the window.
I spend too much money on takeaways.
I'm afraid of flying but I have to travel for work next month.
I have too many hobbies and never finish anything.
""")
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
PY_FUNCS = P("""
is_palindrome(text)|returns True if the text reads the same forwards and backwards, ignoring case, spaces and punctuation
chunk(items, size)|splits a list into consecutive chunks of at most `size` elements
flatten_dict(d, sep=".")|flattens a nested dictionary into a single level, joining keys with `sep`
word_frequencies(text)|returns a dictionary mapping each lowercased word in a text to the number of times it appears
top_k_words(text, k)|returns the `k` most common words in a text, ignoring case and punctuation
rotate_list(items, k)|rotates a list to the right by `k` positions
is_anagram(a, b)|checks whether two strings are anagrams of each other, ignoring spaces and case
roman_to_int(s)|converts a Roman numeral such as "MCMXCIV" to an integer
int_to_roman(n)|converts an integer between 1 and 3999 to a Roman numeral
caesar_cipher(text, shift)|encrypts a string with a Caesar cipher, leaving non-letters unchanged
run_length_encode(s)|compresses a string with run-length encoding, so "aaabcc" becomes "a3b1c2"
run_length_decode(s)|reverses run-length encoding, turning "a3b1c2" back into "aaabcc"
gcd(a, b)|computes the greatest common divisor of two integers with Euclid's algorithm
lcm_of_list(numbers)|returns the least common multiple of a list of positive integers
primes_up_to(n)|returns all prime numbers up to `n` using the Sieve of Eratosthenes
prime_factors(n)|returns the prime factorisation of `n` as a list, for example [2, 2, 3] for 12
is_leap_year(year)|tells whether a year is a leap year in the Gregorian calendar
days_between(date1, date2)|returns the number of days between two dates given as "YYYY-MM-DD" strings
parse_duration(text)|turns strings like "1h 30m" or "45s" into a number of seconds
format_bytes(n)|formats a number of bytes as a human-readable string such as "1.5 MB"
slugify(title)|turns a title into a URL slug: lowercase, words joined by hyphens, punctuation removed
camel_to_snake(name)|converts a camelCase identifier to snake_case
snake_to_camel(name)|converts a snake_case identifier to camelCase
validate_email(address)|does a reasonable check of whether a string looks like an email address
mask_card_number(number)|hides all but the last four digits of a credit card number
luhn_check(number)|validates a credit card number with the Luhn algorithm
moving_average(values, window)|returns the moving averages of a list of numbers over a fixed window
median(values)|returns the median of a non-empty list of numbers without using the statistics module
mode(values)|returns the most frequent value in a list, breaking ties by the smallest value
normalize(values)|scales a list of numbers so that they lie between 0 and 1
dot_product(a, b)|computes the dot product of two equal-length lists of numbers
transpose(matrix)|transposes a matrix given as a list of lists
matrix_multiply(a, b)|multiplies two matrices given as lists of lists
spiral_order(matrix)|returns the elements of a 2D grid in clockwise spiral order
binary_search(items, target)|returns the index of `target` in a sorted list, or -1 if it is absent
two_sum(nums, target)|returns the indices of the two numbers in a list that add up to `target`
max_subarray(nums)|returns the largest sum of a contiguous sub-list (Kadane's algorithm)
longest_common_prefix(words)|returns the longest prefix shared by all strings in a list
longest_unique_substring(s)|returns the length of the longest substring without repeated characters
balanced_brackets(s)|checks whether the brackets (), [] and {} in a string are balanced
merge_sorted(a, b)|merges two sorted lists into a single sorted list in linear time
quicksort(items)|sorts a list using the quicksort algorithm and returns a new list
insertion_sort(items)|sorts a list in place with insertion sort
count_islands(grid)|counts groups of connected 1s in a grid of 0s and 1s
shortest_path(graph, start, end)|finds the shortest path in an unweighted graph given as an adjacency dictionary
topological_sort(deps)|orders tasks so that every task comes after its dependencies, given a dict of task to dependencies
has_cycle(graph)|detects whether a directed graph contains a cycle
edit_distance(a, b)|computes the Levenshtein distance between two strings
fibonacci(n)|returns the first `n` Fibonacci numbers as a list
pascal_triangle(rows)|returns the first `rows` rows of Pascal's triangle
power_set(items)|returns every subset of a list
permutations(items)|returns all permutations of a list without using itertools
coin_change(coins, amount)|returns the fewest coins needed to make `amount`, or -1 if it is impossible
knapsack(weights, values, capacity)|solves the 0/1 knapsack problem and returns the best total value
read_csv_column(path, column)|reads a CSV file and returns the values of one named column as a list
count_lines(path)|counts the non-empty lines in a text file
find_duplicates(paths)|groups files with identical contents by hashing them
tail(path, n=10)|returns the last `n` lines of a text file without reading the whole file into memory
load_config(path)|loads a JSON config file and fills in default values for missing keys
merge_dicts(a, b)|deep-merges two nested dictionaries, with values from `b` taking priority
group_by(items, key)|groups a list of dictionaries by the value of a given key
dedupe(items)|removes duplicates from a list while keeping the original order
pairwise_differences(values)|returns the differences between consecutive numbers in a list
histogram(values, bins)|counts how many values fall into each of `bins` equal-width bins
render_table(rows)|prints a list of rows as a neatly aligned text table
wrap_text(text, width)|wraps a paragraph so no line is longer than `width` characters, without breaking words
count_vowels_consonants(text)|returns a pair with the number of vowels and consonants in a string
capitalize_sentences(text)|capitalizes the first letter of each sentence in a paragraph
extract_hashtags(text)|returns all hashtags in a social media post, without duplicates
extract_urls(text)|finds all http and https URLs in a block of text
parse_query_string(qs)|parses a URL query string into a dictionary of lists
retry(func, attempts=3)|calls a function and retries it with exponential backoff when it raises an exception
timed(func)|is a decorator that prints how long each call to the wrapped function takes
memoize(func)|is a decorator that caches the results of a function with hashable arguments
batched(iterable, n)|is a generator that yields lists of `n` items from any iterable
sliding_window(seq, n)|is a generator that yields every window of `n` consecutive items
interleave(*lists)|interleaves several lists, so [1, 2] and ["a", "b"] give [1, "a", 2, "b"]
celsius_to_fahrenheit(c)|converts a temperature from Celsius to Fahrenheit, rounding to one decimal place
bmi(weight_kg, height_m)|computes the body-mass index and returns it with a category label
loan_payment(principal, annual_rate, years)|computes the fixed monthly payment of a loan
compound_interest(principal, rate, years)|returns a list of the balance at the end of each year
split_bill(total, people, tip=0.15)|splits a restaurant bill including tip, rounding each share to the cent
next_weekday(date, weekday)|returns the next date that falls on the given weekday
age_from_birthday(birthday)|computes someone's age in whole years from a date of birth
time_ago(timestamp)|returns strings like "5 minutes ago" or "3 days ago" for a past datetime
password_strength(password)|scores a password from 0 to 4 based on length and character variety
generate_password(length=16)|creates a random password with letters, digits and symbols using the secrets module
anonymize_ips(log_lines)|replaces the last octet of every IPv4 address in a list of log lines with 0
parse_log_line(line)|extracts the timestamp, level and message from a log line like "2024-05-01 12:00:03 ERROR Disk full"
count_status_codes(lines)|counts HTTP status codes in web server access log lines
diff_lists(old, new)|returns which items were added and which were removed between two lists
sum_digits(n)|returns the sum of the digits of an integer
is_armstrong(n)|checks whether a number equals the sum of its digits each raised to the number of digits
collatz_steps(n)|counts the steps needed for the Collatz sequence starting at `n` to reach 1
digital_root(n)|repeatedly sums the digits of `n` until a single digit remains
to_binary(n)|converts a non-negative integer to its binary representation without using bin()
from_base(digits, base)|converts a string of digits in any base from 2 to 36 to an integer
tic_tac_toe_winner(board)|returns "X", "O" or None for a 3x3 board given as a list of strings
valid_sudoku(board)|checks whether a partially filled 9x9 Sudoku board breaks any rules
game_of_life_step(grid)|computes the next generation of Conway's Game of Life
flood_fill(image, x, y, colour)|fills the connected region containing (x, y) with a new colour
closest_pair(points)|finds the two closest points in a list of (x, y) tuples
polygon_area(points)|computes the area of a simple polygon with the shoelace formula
point_in_rectangle(point, rect)|checks whether a point lies inside an axis-aligned rectangle
haversine(lat1, lon1, lat2, lon2)|returns the great-circle distance in kilometres between two coordinates
weighted_choice(items, weights)|picks a random item with probability proportional to its weight
reservoir_sample(stream, k)|picks `k` items uniformly at random from a stream of unknown length
shuffle_deck()|creates and shuffles a standard deck of 52 playing cards
roll_dice(spec)|parses dice notation like "3d6+2" and returns a random roll
word_ladder_neighbors(word, words)|returns the words in a list that differ from `word` by exactly one letter
anagram_groups(words)|groups a list of words into lists of anagrams
count_words_in_files(paths)|returns the total number of words across several text files
find_files(root, extension)|recursively finds all files under a directory with a given extension
rename_with_date(folder)|adds today's date as a prefix to every file name in a folder
csv_to_json(csv_path, json_path)|converts a CSV file with a header row into a JSON list of objects
json_pretty(path)|reads a JSON file and prints it with sorted keys and indentation
safe_divide(a, b)|divides two numbers and returns None instead of raising on division by zero
clamp(value, low, high)|restricts a number to a given range
lerp(a, b, t)|linearly interpolates between two numbers
percent_change(old, new)|returns the percentage change between two values, handling a zero old value
ordinal(n)|returns the ordinal string for a number, such as "1st", "22nd" or "113th"
number_to_words(n)|spells out an integer below one million in English words
pluralize(word, count)|returns "1 apple" or "3 apples", handling a few irregular nouns
truncate(text, limit)|shortens a string to at most `limit` characters, adding "..." and not cutting words in half
strip_html(html)|removes HTML tags from a string and unescapes entities
markdown_headings(text)|extracts all Markdown headings with their levels
parse_ini(text)|parses a simple INI-style config string into a dictionary of sections
""")
PY_FUNC_T = L("""
Write a Python function `{sig}` that {beh}.
Implement `{sig}` in Python. It {beh}.
I need a Python function that {beh}. Please call it `{name}`.
Create a function `{sig}` which {beh}. Add type hints and a docstring.
Write `{sig}`, a function that {beh}. Include a couple of example calls.
Can you write a Python function that {beh}? Explain how it works afterwards.
Write an efficient Python implementation of `{sig}`, which {beh}. What is its time complexity?
Write a Python function that {beh}, without using any third-party libraries.
Please implement `{name}` in Python: it {beh}.{x}
Show me a clean, well-commented Python function that {beh}.
Write a short Python function, `{sig}`, that {beh}. Then show what it returns for one example input.
In Python, how would you write a function that {beh}?
""")
PY_FUNC_X = ["", "", "", " Handle empty input sensibly.", " Raise a ValueError for invalid arguments.",
             " Use only the standard library.", " Keep it readable rather than clever.", " Add type hints.",
             " Include a docstring with an example."]
PY_CLASSES = P("""
Stack|a stack with push, pop, peek and is_empty methods
Queue|a FIFO queue built on two stacks
BankAccount|a bank account with deposit, withdraw and a transaction history, refusing overdrafts
ShoppingCart|a shopping cart that can add items with a quantity, remove them and compute the total with a discount code
Temperature|a temperature that can be read and set in Celsius, Fahrenheit or Kelvin through properties
Matrix|a small matrix type supporting addition, multiplication and transpose with operator overloading
Vector2D|a 2D vector with addition, scaling, length and dot product
Fraction|an exact fraction that reduces itself and supports +, -, * and / (without using the fractions module)
LinkedList|a singly linked list with append, prepend, remove and iteration
BinarySearchTree|a binary search tree with insert, contains and in-order traversal
MinHeap|a binary min-heap with push, pop and peek, implemented on a list
Graph|an undirected graph with methods to add edges and run breadth-first search
LRUCache|a least-recently-used cache with a maximum size, built on OrderedDict
RateLimiter|a token-bucket rate limiter that says whether a request is allowed at a given time
Timer|a context manager that measures how long the code inside a with block takes
TodoList|a to-do list that can add tasks with due dates, mark them done and list overdue ones
Library|a small library system where members can borrow and return books, with a limit per member
Inventory|a shop inventory that tracks stock levels and warns when an item runs low
ParkingLot|a parking lot with a fixed number of spaces for cars and motorbikes
Thermostat|a thermostat that switches heating on and off around a target temperature with hysteresis
EventBus|a simple publish/subscribe event bus where handlers subscribe to named events
Polynomial|a polynomial with evaluation, addition and a readable string representation
Money|an amount of money in a currency that refuses to add amounts in different currencies
Deck|a deck of playing cards that can be shuffled and dealt into hands
Student|a student with grades per subject and a method for the weighted average
Counter|a word counter that reads text incrementally and reports the most common words
Trie|a prefix tree with insert, search and starts_with methods
Matrix2x2|an immutable 2x2 matrix using a frozen dataclass
Point|an immutable point with a distance method, implemented as a NamedTuple
CircularBuffer|a fixed-size circular buffer that overwrites the oldest value when full
Stopwatch|a stopwatch with start, stop, lap and reset
ConfigStore|a configuration object that loads from a JSON file and allows attribute-style access
Rectangle|a rectangle with area, perimeter and a method to check whether it overlaps another rectangle
Playlist|a music playlist with add, remove, shuffle and total duration
Recipe|a recipe that scales its ingredient quantities to a different number of servings
""")
PY_CLASS_T = L("""
Write a Python class `{name}` that models {desc}.
Implement {desc} as a Python class called `{name}`.
Design a `{name}` class in Python: {desc}. Include a `__repr__`.
Create a Python class for {desc}. Show a short usage example.
Write a `{name}` class in Python ({desc}) and a few tests for it.
I'm learning object-oriented Python. Can you show me how to write {desc}?
""")
PY_TOPICS = L("""
generators and the yield keyword
decorators
context managers and the with statement
*args and **kwargs
list comprehensions versus for loops
the global interpreter lock
mutable default arguments
shallow and deep copies
f-strings
virtual environments
type hints
async and await
dunder methods like __eq__ and __hash__
the difference between `is` and `==`
lambda functions
exception handling with try, except, else and finally
modules and packages
dataclasses
closures
the if __name__ == "__main__" idiom
slicing
sets and when to use them
dictionary comprehensions
enumerate and zip
iterators and the iterator protocol
properties
class methods and static methods
inheritance and super()
abstract base classes
the pathlib module
the logging module
reading and writing JSON files
regular expressions
unit testing with pytest
sorting with key functions
the collections module
the itertools module
functools.lru_cache
threading versus multiprocessing
garbage collection and reference counting
the walrus operator
structural pattern matching with match
string methods such as split, join and strip
integer division and the modulo operator
floating-point rounding errors
the difference between append and extend
how imports work
namedtuples
Enum classes
the datetime module
command-line arguments with argparse
reading files line by line
the subprocess module
the random module and seeding
""")
PY_TOPIC_T = L("""
Explain {t} in Python with a short example.
Can you explain {t} in Python? Show a small example.
What should a beginner know about {t} in Python?
When is {t} the right tool in Python, and when is it not?
Give me a quick tutorial on {t} in Python.
What are common mistakes with {t} in Python?
I'm preparing for a Python interview. How would you explain {t}?
""")
CS_QUESTIONS = L("""
What is the difference between a process and a thread?
Explain Big O notation with examples of O(1), O(n) and O(n log n).
How does a hash map handle collisions?
What is the difference between a stack and a queue, and where is each used?
Explain recursion using a simple example, and when it can cause problems.
What is dynamic programming? Show it on a small problem.
What are the SOLID principles in object-oriented design?
Explain the difference between compiled and interpreted languages.
What is a race condition and how can it be prevented?
What is the difference between unit tests and integration tests?
Explain what a REST API is and how HTTP methods map to actions.
What happens when I type a URL into my browser and press Enter?
What is the difference between authentication and authorization?
Explain how Git branches and merges work.
What does it mean for a function to be pure?
What is memoization and when is it useful?
Explain the difference between breadth-first and depth-first search.
How does garbage collection work in general?
What is technical debt, and how can a team manage it?
What is the difference between a library and a framework?
Explain what a deadlock is with an everyday analogy.
Why is it a bad idea to store passwords in plain text, and what should you do instead?
What is continuous integration?
What does idempotent mean in the context of APIs?
Explain the difference between SQL injection and cross-site scripting.
What is a linked list, and when would I use one instead of an array?
How does binary search work, and why does the list need to be sorted?
What is the difference between concurrency and parallelism?
What is an off-by-one error? Give an example.
Why do floating-point numbers sometimes give surprising results, like 0.1 + 0.2?
""")
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
BUGGY_T = L("""
The following Python function is supposed to {p}, but it has a bug. Find it and explain the fix.
This code should {p}, but something is wrong with it. What is the bug?
Can you spot the mistake? This is meant to {p}.
Debug this Python code. It's supposed to {p}.
My code is meant to {p}, but the output is wrong. What did I do wrong, and how do I fix it?
Review this snippet, which should {p}. Point out the bug and give a corrected version.
""")
JS_TASKS = L("""
debounces another function by a given number of milliseconds
throttles a function so it runs at most once per second
groups an array of objects by the value of a property
deep-clones a plain object without using JSON methods
checks whether a string is a valid hexadecimal colour code
capitalizes the first letter of every word in a sentence
counts how often each element appears in an array
sorts an array of objects by date, newest first
formats a number as a price in euros using Intl.NumberFormat
parses a URL's query string into an object
splits an array into chunks of a given size
flattens an arbitrarily nested array without using Array.prototype.flat
fetches JSON from a URL with async/await and retries twice on failure
returns a promise that resolves after a given number of milliseconds
removes all falsy values from an array
generates a random integer between two values, inclusive
validates that a password has at least eight characters, a number and an uppercase letter
converts a number of seconds to a "hh:mm:ss" string
picks a random element from an array
merges two sorted arrays into one sorted array
finds the most frequent word in a paragraph
implements a tiny event emitter with on, off and emit
memoizes any function with a single argument
checks whether two strings are anagrams
truncates a string to a maximum length and adds an ellipsis
counts down from ten to zero in the browser console, one number per second
toggles a CSS class on a button when it is clicked
adds items to an unordered list from a text input when the user presses Enter
saves a user's theme preference in localStorage and applies it on page load
runs several fetch requests in parallel and reports which ones failed
""")
JS_T = L("""
Write a JavaScript function that {t}.
Show me modern JavaScript that {t}.
How would you write JavaScript code that {t}? Please explain it briefly.
Write an ES6 function that {t}, with a short usage example.
I need a small JavaScript helper that {t}. Can you write it?
""")
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
SQL_T = L("""
Write a SQL query to {q}. The tables are {s}.
Given the tables {s}, how would I {q} in SQL?
Using {s}, write SQL to {q}. Explain how the query works.
I have {s}. Write a query to {q}.
""")
SQL_CONCEPTS = L("""
Explain the difference between INNER JOIN, LEFT JOIN and FULL OUTER JOIN with a small example.
What is the difference between WHERE and HAVING in SQL?
What is a database index, and when should I add one?
Explain database normalization up to the third normal form.
What are window functions in SQL? Show an example with ROW_NUMBER.
What is the difference between a primary key and a foreign key?
How do transactions and ACID properties work in a relational database?
When would you use a subquery instead of a join?
What does GROUP BY do, and why does every selected column need to be grouped or aggregated?
How can I find and remove duplicate rows in a SQL table?
""")
BASH_TASKS = L("""
renames every .jpeg file in the current directory to .jpg
counts the lines in every .py file under a folder and prints the total
backs up a directory into a tar.gz archive named with today's date
deletes log files older than 14 days in /var/log/myapp
prints the ten largest directories under the current directory
checks whether a website returns HTTP 200 and prints a warning otherwise
loops over a list of hostnames and pings each one once
converts all .wav files in a folder to .mp3 with ffmpeg
prints the most common IP addresses in an nginx access log
monitors a file and prints new lines as they are added
creates a new project folder with src, tests and docs subfolders and a README
prints disk usage as a percentage and warns if it is above 90%
downloads a list of URLs from a text file, one per line
replaces a word in every .txt file in a directory
shows the processes using the most memory
asks the user for a name and greets them, with a default if nothing is entered
counts how many times each word appears in a text file
merges all CSV files in a folder into one file, keeping only the first header
runs a command up to five times until it succeeds
prints every line of a file that contains an email address
""")
BASH_T = L("""
Write a bash script that {t}.
Write a shell one-liner that {t}, and explain each part.
I need a small Bash script that {t}. Please add comments.
Show me a bash script that {t}, and how to make it executable.
""")
BASH_CMDS = L("""
find . -name "*.log" -mtime +7 -delete
grep -rn "TODO" --include="*.py" .
tar -czvf backup.tar.gz ~/Documents
du -sh * | sort -h
awk -F, '{ sum += $3 } END { print sum }' sales.csv
ps aux --sort=-%mem | head -n 5
chmod -R 755 public/
sed -i 's/foo/bar/g' config.txt
cut -d: -f1 /etc/passwd | sort
ls -la | grep "^d"
curl -s https://example.com/api | jq '.items[].name'
find . -type f -name "*.txt" | xargs wc -l
cat access.log | awk '{print $1}' | sort | uniq -c | sort -rn | head
rsync -avz --delete src/ backup/
kill -9 $(lsof -t -i:8080)
for f in *.png; do convert "$f" "${f%.png}.jpg"; done
tail -f app.log | grep --line-buffered ERROR
history | awk '{print $2}' | sort | uniq -c | sort -rn | head -n 10
""")
BASH_CMD_T = ["Explain this bash command: `{c}`", "What does `{c}` do? Break it down piece by piece.",
              "Can you explain what this shell command does, and whether it is safe to run?\n\n{c}"]
C_TASKS = L("""
Write a C function that reverses a string in place.
Write a C program that reads integers from standard input and prints their average.
Implement a singly linked list in C with functions to insert at the head, delete a value and print the list.
Write a C function that counts the number of set bits in an unsigned integer.
Write a C program that copies one file to another using fread and fwrite.
Implement a stack of integers in C using a dynamically resized array.
Write a C function that checks whether a string is a palindrome.
Write a C program that prints the first twenty prime numbers.
Write a C function to swap two integers using pointers, and explain why pointers are needed.
Implement binary search in C on a sorted array of integers.
Write a C program that counts words, lines and characters in a text file, like wc.
Write a C function that converts a string to uppercase.
Write a simple hash table in C with string keys and integer values.
Write a C program that sorts an array of structs by a field using qsort.
Explain the difference between malloc and calloc in C, with an example.
What is a segmentation fault in C, and what usually causes one?
Explain pointers to pointers in C with a simple example.
What is the difference between an array and a pointer in C?
Explain what undefined behaviour means in C and give three examples.
Why do we need to free memory in C, and what is a memory leak?
""")
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
TEST_T = L("""
Write pytest unit tests for a function `{sig}` that {beh}. Cover the edge cases.
What test cases would you write for `{sig}`, which {beh}? Write them with unittest.
Write a few pytest tests for a Python function that {beh}. Assume it is called `{name}`.
I wrote `{sig}`, which {beh}. Can you write tests that would catch common bugs in it?
""")


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
STEP = L("""
Explain your reasoning step by step.
Show each step of your working.
Think it through step by step before giving the final answer.
Please show your working.
Walk me through the solution one step at a time.
Reason step by step, then state the answer clearly.
Break the problem into steps and explain each one.
Solve it step by step.
Show the calculation step by step.
Explain how you get the answer.
Lay out your reasoning clearly and give the final answer at the end.
Go step by step and check your answer at the end.
Show your method, not just the answer.
""")
SHOP_ITEMS = P("""
notebook|notebooks|1.5|6
pen|pens|0.5|3
apple|apples|0.3|1.2
loaf of bread|loaves of bread|1.2|4.5
coffee|coffees|2|5
cinema ticket|cinema tickets|6|15
T-shirt|T-shirts|8|25
bag of rice|bags of rice|1.5|6
pot plant|pot plants|3|18
paperback|paperbacks|5|14
bus ticket|bus tickets|1.5|4
sandwich|sandwiches|3|7
""")
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
def make_prompts(n=8000, seed=0, stats=None):
    """`n` distinct prompts as (category, kind, prompt) tuples, shuffled with `seed`.

    `stats`, when a dict, receives the counts of held-out drops and of rejected duplicates."""
    rng = random.Random(seed)
    heldout = HeldOut([p for f in EVAL_FILES for p in read_prompts(f)], read_prompts(OLD_TRAIN_FILE))
    corpus = harvest_stdlib()
    quotas, left = {}, n
    for i, (cat, share) in enumerate(SHARES):
        quotas[cat] = left if i == len(SHARES) - 1 else round(n * share)
        left -= quotas[cat]
    seen, cores = set(), Counter()
    out, dropped, dupes = [], 0, 0
    for cat, _ in SHARES:
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
    args = ap.parse_args(argv)
    if args.n < 1:
        ap.error("--n must be positive")
    t0 = time.perf_counter()
    stats = {}
    items = make_prompts(args.n, args.seed, stats)
    d = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(d, exist_ok=True)
    with open(args.out, "w", encoding="utf-8", newline="\n") as f:
        for _, _, text in items:
            f.write(json.dumps({"prompt": text}, ensure_ascii=False) + "\n")
    cats = Counter(c for c, _, _ in items)
    kinds = Counter((c, k) for c, k, _ in items)
    err = sys.stderr
    print(f"wrote {len(items)} prompts to {args.out} (seed {args.seed}) in {time.perf_counter() - t0:.1f} s", file=err)
    for cat, _ in SHARES:
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
