"""Spec: the single-process pieces of the distributed server and loader (no process group needed)."""

import pytest

from mlx_specdec_plugin.server.lockstep import decode_job, encode_job
from mlx_specdec_plugin.distributed import check_tensor_split
from mlx_specdec_plugin.server.app import GenRequest


def test_a_tensor_split_that_does_not_divide_the_heads_is_refused_in_one_line():
    smollm2 = {"num_attention_heads": 9, "num_key_value_heads": 3, "intermediate_size": 1536}
    with pytest.raises(ValueError, match=r"num_attention_heads = 9, num_key_value_heads = 3 not divisible by 2 ranks"):
        check_tensor_split(smollm2, 2, "smollm2")
    check_tensor_split(smollm2, 3, "smollm2")  # 3 heads and 1 key/value head per rank
    check_tensor_split({"text_config": {"num_attention_heads": 14, "num_key_value_heads": 2}}, 2)


def test_a_job_reaches_the_followers_as_the_same_request_and_prompt():
    req = GenRequest(kind="chat", model="m", stream=True, include_usage=False, max_tokens=7, max_tokens_explicit=True,
                     temperature=0.5, top_p=0.9, top_k=3, min_p=0.0, repetition_penalty=1.1,
                     repetition_context_size=20, presence_penalty=None, presence_context_size=20,
                     frequency_penalty=None, frequency_context_size=20, logit_bias={5: -100.0, 17: 2.5},
                     stop=["\n\n"], seed=42, draft_strategy="lookup", acceptor="auto", num_draft_tokens="auto",
                     block_size=None, messages=[{"role": "user", "content": "hi"}], logprobs=True, top_logprobs=2)
    got, prompt = decode_job(encode_job(req, [1, 2, 3]), GenRequest)
    assert prompt == [1, 2, 3]
    assert got.logit_bias == {5: -100.0, 17: 2.5}  # integer token ids again, not JSON's strings
    assert got.messages is None  # the followers get token ids, never the messages
    req.messages = None
    assert got == req
