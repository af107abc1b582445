"""Models small enough to build inside a test, saved as a local model directory like a real one."""

from __future__ import annotations

from pathlib import Path

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")

# Lower-case words the tests' queries and texts use; any other word becomes [UNK].
WORDS = (
    "a", "about", "and", "apple", "banana", "bread", "cat", "cats", "dog", "dogs", "fox", "fruit", "how", "in",
    "is", "jumps", "lazy", "of", "over", "quick", "rain", "search", "the", "to", "weather", "what", "where",
)  # fmt: skip


def build_tiny_cross_encoder(path: Path, *, seed: int = 0, num_labels: int = 1) -> Path:
    """A randomly initialised two-layer BERT cross-encoder (sequence classification) with its tokenizer,
    saved to `path`: what SEMANTIK_RERANK_MODEL_PATH points at. Same seed, same weights and scores."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    path.mkdir(parents=True, exist_ok=True)
    vocab = path / "vocab.txt"
    vocab.write_text("\n".join((*SPECIAL_TOKENS, *WORDS)) + "\n")
    # BertTokenizer is the fast (Rust) one in transformers 5. Read from the folder: the constructor's
    # vocab_file is silently ignored there, leaving every word [UNK].
    tokenizer = BertTokenizer.from_pretrained(str(path), do_lower_case=True, model_max_length=512)
    assert tokenizer.convert_tokens_to_ids("fox") != tokenizer.unk_token_id, "the vocabulary was not read"
    tokenizer.save_pretrained(str(path))
    config = BertConfig(
        vocab_size=len(SPECIAL_TOKENS) + len(WORDS),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        # Wider than BERT's 0.02, so random weights give texts visibly different scores.
        initializer_range=0.5,
    )
    config.num_labels = num_labels
    torch.manual_seed(seed)
    BertForSequenceClassification(config).save_pretrained(str(path))
    return path


def build_tiny_qwen3(path: Path, *, hidden_size: int, max_position_embeddings: int) -> Path:
    """Qwen3's architecture (last-token pooling, left padding) with two thin layers and random weights, and a
    byte-level BPE tokenizer trained on a license text, saved to `path` like a real model directory."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3Model

    path.mkdir(parents=True, exist_ok=True)
    corpus = Path("/usr/share/common-licenses/GPL-3").read_text().splitlines()
    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>", "<unk>"]))
    tokenizer = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=backend, eos_token="<|endoftext|>", pad_token="<|endoftext|>", unk_token="<unk>"
    )
    tokenizer.save_pretrained(path)
    config = Qwen3Config(
        vocab_size=tokenizer.vocab_size + 8,
        hidden_size=hidden_size,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        max_position_embeddings=max_position_embeddings,
    )
    Qwen3Model(config).save_pretrained(path)
    return path
