"""Per-round time split of the loop on a random-weight Qwen3-4B shape (bf16, bucketed cache, oracle
accept 0.95, k = 8, 128 tokens after a 512-token prompt), then a cProfile of one run.

    PYTHONPATH=. python docs/scripts/profile_round.py
"""
import cProfile, pstats, time, mlx.core as mx
from mlx_lm.generate import generate_step
from mlx_lm.models.cache import make_prompt_cache
from mlx_specdec_plugin.bench.oracle import OracleProposer
from mlx_specdec_plugin.testing.tiny import random_model
from mlx_specdec_plugin.bucketed import bucketed
from mlx_specdec_plugin.loop import speculative_generate_step
from mlx_specdec_plugin.acceptors import greedy
from mlx_specdec_plugin.stats import SpecStats
from mlx_specdec_plugin.target import TargetAdapter
m, _ = random_model("qwen3-4b", "bfloat16")
prompt = mx.random.randint(0, 151936, (512,)).astype(mx.uint32)
ref = [t for t, _ in generate_step(prompt, m, max_tokens=129)]
t = TargetAdapter(m)
def run():
    st = SpecStats()
    out = [x for x, _, _ in speculative_generate_step(prompt, t, OracleProposer(ref, 512, 0.95, 151936), greedy.accept,
           num_draft_tokens=8, max_tokens=128, stats=st, prompt_cache=bucketed(make_prompt_cache(m)))]
    return st
run()
t0 = time.perf_counter(); st = run(); el = time.perf_counter() - t0
print("elapsed", el, "rounds", st.num_rounds, "ms/round", el / st.num_rounds * 1e3, "draft", st.draft_time/st.num_rounds*1e3, "verify+accept", st.verify_time/st.num_rounds*1e3)
cProfile.run("run()", "/tmp/p.out")
pstats.Stats("/tmp/p.out").sort_stats("tottime").print_stats(18)
