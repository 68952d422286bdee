"""The hierarchical VAE family: structure, the step decoder, the objective, the metrics' sums."""

import math

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from components.evaluation.edit_similarity import edit_similarity, levenshtein
from components.evaluation.vae_metrics import _Sums, _VAESums, active_units, shuffled_z_nll_gap
from models.families.hvae import HVAEConfig, decoder_parameters, hvae_optimizer, matched_flat_units
from models.families.hvae_model import build_hvae
from models.families.hvae_parts import kl_per_latent_unit, kl_to_standard_normal
from models.families.hvae_parts import segment_positions as _segment_positions
from models.layers.tokens import EOS_ID
from models.runtime.training import compile_language_model

VOCAB = 23
TINY = dict(segment_length=4, embedding_dim=8, encoder_units=12, latent_dim=6, conductor_units=10, decoder_units=12)


def texts(batch=3, length=16, real=(13, 9, 16), seed=0):
    """Target ids: random tokens, EOS, then padding."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(3, VOCAB - 1, size=(batch, length))
    for row, n in enumerate(real[:batch]):
        if n < length:
            ids[row, n - 1] = EOS_ID
            ids[row, n:] = 0
    return tf.constant(ids, tf.int64)


VARIANTS = {
    "hierarchical": {},
    "flat": {"decoder": "flat"},
    "hierarchical, conductor reads z": {"conductor_input": "z"},
    "hierarchical, decoder reads z": {"decoder_reads_z": True},
    "hierarchical, a code per segment": {"encoder_summary": "local", "latent_per_segment": True, "decoder_reads_z": True},
    "flat, a code per segment": {"decoder": "flat", "encoder_summary": "local", "latent_per_segment": True},
}


@pytest.fixture(scope="module", params=list(VARIANTS))
def model(request):
    tf_keras.utils.set_random_seed(1)
    return build_hvae(HVAEConfig(decoder_layers=2, **VARIANTS[request.param], **TINY), VOCAB)


@pytest.mark.parametrize("settings", [TINY, {}, dict(segment_length=16, decoder_layers=2),
                                      dict(conductor_input="z", decoder_reads_z=True, **TINY),
                                      dict(encoder_summary="local", latent_per_segment=True, decoder_reads_z=True, **TINY)])
def test_flat_ablation_matches_the_hierarchical_parameter_budget(settings):
    hierarchical = build_hvae(HVAEConfig(**settings), VOCAB)
    flat = build_hvae(HVAEConfig(decoder="flat", **settings), VOCAB)
    assert abs(flat.count_params() - hierarchical.count_params()) <= 0.1 * hierarchical.count_params()
    # the analytic count the width is chosen from is the real one
    config = HVAEConfig(**settings)
    shared = hierarchical.count_params() - decoder_parameters(config, VOCAB)
    assert flat.count_params() == shared + decoder_parameters(config, VOCAB, matched_flat_units(config, VOCAB))


def test_segments_are_decoded_from_their_own_embedding_and_the_previous_token(model):
    """Hierarchical: given z, segment 2's logits depend on the tokens before it only through
    the last token of segment 1; flat: they depend on every earlier token."""
    ids = texts(real=(16, 16, 16))
    z = tf.random.normal([3, model.latent_size(16)], seed=3)
    changed = ids.numpy().copy()
    changed[:, :3] = (changed[:, :3] + 1 - 3) % (VOCAB - 4) + 3  # segment 0's first three tokens
    before = model.reconstruction_logits(z, ids).numpy()
    after = model.reconstruction_logits(z, tf.constant(changed)).numpy()
    later = slice(8, 16)  # segments 2 and 3
    if model.hierarchical:
        np.testing.assert_allclose(after[:, later], before[:, later], atol=1e-5)
    else:
        assert not np.allclose(after[:, later], before[:, later], atol=1e-5)


def test_step_decoder_reproduces_teacher_forced_logits(model):
    ids = texts(real=(16, 11, 6))
    z = tf.random.normal([3, model.latent_size(16)], seed=4)
    expected = model.reconstruction_logits(z, ids).numpy()
    step, state = model.decoder_step(z, 16)
    token = tf.fill([3], tf.constant(1, tf.int64))  # BOS
    for position in range(16):
        logits, state = step(token, state, tf.constant(position))
        np.testing.assert_allclose(logits.numpy(), expected[:, position], atol=1e-4)
        token = ids[:, position]


def test_decode_is_greedy_at_temperature_zero_and_repeatable_with_a_seed(model):
    z = tf.random.normal([2, model.latent_size(16)], seed=5)
    greedy = model.decode(z, 16).numpy()
    step, state = model.decoder_step(z, 16)
    token = tf.fill([2], tf.constant(1, tf.int64))
    for position in range(16):
        logits, state = step(token, state, tf.constant(position))
        logits = logits.numpy()
        logits[:, :2] = -1e9  # PAD and BOS are never chosen
        best = logits.argmax(-1)
        live = greedy[:, position] != 0
        np.testing.assert_array_equal(greedy[live, position], best[live])
        token = tf.constant(greedy[:, position])
    drawn = [model.decode(z, 16, 1.0, seed).numpy() for seed in (7, 7, 8)]
    np.testing.assert_array_equal(drawn[0], drawn[1])
    assert not np.array_equal(drawn[0], drawn[2])


def test_kl_matches_the_closed_form():
    mu = tf.constant([[0.5, -1.0]])
    sigma = tf.constant([[0.5, 2.0]])
    expected = sum(0.5 * (m * m + s * s - 1 - 2 * math.log(s)) for m, s in [(0.5, 0.5), (-1.0, 2.0)])
    assert float(kl_to_standard_normal(mu, sigma)[0]) == pytest.approx(expected, rel=1e-5)
    assert float(kl_to_standard_normal(tf.zeros([1, 4]), tf.ones([1, 4]))[0]) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("schedule", ["exponential", "logistic"])
def test_beta_is_annealed_from_zero_towards_its_maximum(schedule):
    config = HVAEConfig(beta_schedule=schedule, beta_max=0.5, beta_rate=0.9, beta_midpoint=10, beta_width=2.0, **TINY)
    model = build_hvae(config, VOCAB)
    compile_language_model(model, hvae_optimizer(config, 100))
    values = []
    for step in (0, 10, 100):
        model.optimizer.iterations.assign(step)
        values.append(float(model.beta()))
    assert values[0] < 0.01 and values[0] < values[1] < values[2] and values[2] == pytest.approx(0.5, abs=1e-3)


def test_training_lowers_the_loss_and_the_kl_penalty_respects_free_bits():
    tf_keras.utils.set_random_seed(2)
    config = HVAEConfig(learning_rate=1e-2, free_bits=1e6, **TINY)  # free bits this large: no KL cost at all
    model = build_hvae(config, VOCAB)
    compile_language_model(model, hvae_optimizer(config, 60))
    ids = np.tile(texts(batch=3, seed=9).numpy(), [8, 1])
    history = model.fit(ids, ids, epochs=6, batch_size=8, verbose=0).history
    assert history["loss"][-1] < history["loss"][0] - 0.5
    model(tf.constant(ids[:8]))
    assert float(tf.add_n(model.losses)) == 0.0  # KL below the free bits costs nothing


def test_elbo_terms_bound_the_reconstruction_and_count_real_tokens(model):
    ids = texts(real=(13, 9, 16))
    terms = {k: v.numpy() for k, v in model.evaluate_texts(ids).items()}
    np.testing.assert_array_equal(terms["token_count"], [13, 9, 16])
    assert (terms["kl"] >= 0).all() and (terms["negative_elbo"] > terms["kl"]).all()
    assert (terms["teacher_forced_hits"] <= terms["token_count"]).all()
    assert (terms["sampled_hits"] <= terms["token_count"]).all()
    own = model.reconstruction_logits(tf.constant(terms["mu"]), ids).numpy().argmax(-1)  # teacher-forced from mu
    np.testing.assert_array_equal(terms["own_z_teacher_forced_hits"], ((own == ids.numpy()) & (ids.numpy() != 0)).sum(1))
    assert terms["mu"].shape == (3, model.latent_size(16))
    assert terms["kl_per_unit"].shape == (3, model.latent_size(16))
    np.testing.assert_allclose(terms["kl_per_unit"].sum(-1), terms["kl"], rtol=1e-5)
    np.testing.assert_array_equal(terms["target_ids"], ids.numpy())
    np.testing.assert_array_equal(terms["shuffled_z_texts"], [1, 1, 1])
    assert (terms["sampled_hits"] == ((terms["sampled_ids"] == ids.numpy()) & (ids.numpy() != 0)).sum(1)).all()


def test_active_units_count_the_latent_units_that_vary_across_texts():
    sums = _Sums.empty()
    rng = np.random.default_rng(0)
    mu = np.stack([rng.normal(0, 1, 500), rng.normal(2, 0.05, 500), np.full(500, -1.0)], axis=1)  # var 1, .0025, 0
    sums.update(texts=500, mu=mu.sum(0), mu_squared=np.square(mu).sum(0))
    assert active_units(sums) == 1.0


def reference_levenshtein(a, b):
    """The textbook dynamic programme, cell by cell."""
    d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
    return d[-1][-1]


@pytest.mark.parametrize("first, second", [
    ("kitten", "sitting"), ("flaw", "lawn"), ("", "abc"), ("abc", ""), ("same", "same"), ("ab", "ba"),
    ("intention", "execution"), ("To be, or not", "To bee or nott"),
])
def test_edit_similarity_matches_the_textbook_levenshtein_distance(first, second):
    a, b = np.array([ord(c) for c in first], np.int64), np.array([ord(c) for c in second], np.int64)
    assert levenshtein(a, b) == reference_levenshtein(first, second)
    longer = max(len(first), len(second))
    expected = 1.0 - reference_levenshtein(first, second) / longer if longer else 1.0
    padded = np.concatenate([b, np.zeros(3, np.int64)])  # padding is not part of a text
    assert edit_similarity(a, padded) == pytest.approx(expected)


def z_blind(model):
    """The same model with its decoder's z input zeroed: a decoder that ignores the code."""
    reconstruction_logits, decoder_step = model.reconstruction_logits, model.decoder_step
    model.reconstruction_logits = lambda z, ids, training=False: reconstruction_logits(tf.zeros_like(z), ids, training)
    model.decoder_step = lambda z, length: decoder_step(tf.zeros_like(z), length)
    return model


def vae_sums(terms):
    combiner = _VAESums(None, "", shuffled_z_nll_gap)
    return combiner.add_input(combiner.create_accumulator(), _Inputs({k: v.numpy() for k, v in terms.items()}))


class _Inputs:
    """What TFMA hands a combiner: the signature's outputs under the predictions key."""

    def __init__(self, predictions):
        self.predictions = predictions

    def get_by_key(self, key, model_name):
        return self.predictions


def memorised_model(config):
    """A tiny autoencoder fitted to four random texts: only z tells them apart."""
    tf_keras.utils.set_random_seed(3)
    model = build_hvae(config, VOCAB)
    compile_language_model(model, hvae_optimizer(config, 300))
    ids = np.tile(texts(batch=4, real=(16, 16, 16, 16), seed=11).numpy(), [4, 1])
    model.fit(ids, ids, epochs=150, batch_size=16, verbose=0)
    return model, tf.constant(ids[:4])


def test_shuffled_z_gap_is_zero_when_the_decoder_ignores_z_and_positive_when_it_memorised_texts():
    config = HVAEConfig(learning_rate=1e-2, beta_max=0.0, free_bits=0.0, posterior_sampling=False,
                        latent_batch_norm=True, **TINY)
    model, ids = memorised_model(config)
    used = vae_sums(model.evaluate_texts(ids))
    assert shuffled_z_nll_gap(used) > 5.0  # nats per text: another text's z makes the text much less likely
    assert used["sampled_hits"] > used["shuffled_z_sampled_hits"]
    assert used["edit_similarity"] > used["shuffled_z_edit_similarity"]
    blind = vae_sums(z_blind(model).evaluate_texts(ids))
    assert shuffled_z_nll_gap(blind) == pytest.approx(0.0, abs=1e-4)
    assert blind["sampled_hits"] == blind["shuffled_z_sampled_hits"]
    alone = vae_sums(model.evaluate_texts(ids[:1]))  # a batch of one has no other text's z
    assert alone["shuffled_z_texts"] == 0 and math.isnan(shuffled_z_nll_gap(alone))


def test_warmup_keeps_beta_at_zero_then_anneals():
    config = HVAEConfig(warmup_steps=50, beta_max=0.5, beta_rate=0.9, **TINY)
    model = build_hvae(config, VOCAB)
    compile_language_model(model, hvae_optimizer(config, 100))
    values = {}
    for step in (0, 49, 50, 60, 500):
        model.optimizer.iterations.assign(step)
        values[step] = float(model.beta())
    assert values[0] == values[49] == 0.0 == values[50]
    assert values[60] == pytest.approx(0.5 * (1 - 0.9**10), rel=1e-5) and values[500] == pytest.approx(0.5, abs=1e-4)


def test_learning_rate_is_constant_unless_a_minimum_asks_for_the_cosine_decay():
    constant = hvae_optimizer(HVAEConfig(learning_rate=2e-3, **TINY), 100)
    assert float(constant.learning_rate) == pytest.approx(2e-3)
    decayed = hvae_optimizer(HVAEConfig(learning_rate=2e-3, min_learning_rate=1e-4, **TINY), 100)
    schedule = decayed._learning_rate  # the schedule itself (`learning_rate` holds its last value)
    rates = [float(schedule(step)) for step in (0, 50, 100, 400)]
    assert rates[0] == pytest.approx(2e-3) and rates[1] == pytest.approx(1.05e-3, rel=1e-5)
    assert rates[2] == pytest.approx(1e-4) == rates[3]
    with pytest.raises(ValueError, match="min_learning_rate"):
        HVAEConfig(learning_rate=1e-3, min_learning_rate=2e-3)


def test_benchmark_settings_type_values_the_preset_leaves_unset():
    from bench.settings import preset_with

    config, changed = preset_with(HVAEConfig(**TINY), ["min_learning_rate=0.0001", "batch_size=64",
                                                      "decoder_reads_z=true", "word_dropout=0.3"])
    assert changed == {"min_learning_rate": 1e-4, "batch_size": 64, "decoder_reads_z": True, "word_dropout": 0.3}
    assert isinstance(config.batch_size, int) and preset_with(config, ["min_learning_rate=none"])[0].min_learning_rate is None


def test_free_bits_per_unit_floors_each_units_batch_mean_kl():
    mu = tf.constant([[2.0, 0.1, 0.0], [0.0, 0.1, 0.0]])
    sigma = tf.ones([2, 3])
    per_unit = kl_per_latent_unit(mu, sigma)  # unit 0: 2 and 0 nats, unit 1: 0.005 each, unit 2: 0
    total = build_hvae(HVAEConfig(free_bits=1.0, **TINY), VOCAB)
    assert float(total.kl_penalty(per_unit)) == pytest.approx(1.005, rel=1e-5)  # per text: max(2.005 - 1, 0) + 0
    floored = build_hvae(HVAEConfig(free_bits_per_unit=0.5, **TINY), VOCAB)
    # unit 0's batch mean is 1 nat: 0.5 above the floor, times 2 texts; the others cost nothing
    assert float(floored.kl_penalty(per_unit)) == pytest.approx(1.0, rel=1e-5)
    free = build_hvae(HVAEConfig(free_bits_per_unit=1.5, **TINY), VOCAB)
    assert float(free.kl_penalty(per_unit)) == 0.0


def test_bag_of_tokens_adds_the_nll_of_the_texts_tokens_under_a_distribution_from_z():
    ids = texts(real=(13, 9, 16))
    plain = build_hvae(HVAEConfig(beta_max=0.0, **TINY), VOCAB)
    plain(ids, training=True)
    assert float(tf.add_n(plain.losses)) == 0.0
    tf_keras.utils.set_random_seed(4)
    model = build_hvae(HVAEConfig(beta_max=0.0, bag_of_tokens=2.0, posterior_sampling=False, **TINY), VOCAB)
    model(ids, training=True)
    mu, _ = model.encode(ids, training=True)  # the batch's own statistics, as in the training call
    log_p = tf.nn.log_softmax(model.bag_of_tokens(mu)).numpy()
    real = ids.numpy() != 0
    expected = -sum(log_p[row, token] for row, tokens in enumerate(ids.numpy()) for token in tokens[tokens != 0])
    assert float(tf.add_n(model.losses)) == pytest.approx(2.0 * expected / real.sum(), rel=1e-4)


@pytest.mark.parametrize("decoder", ["hierarchical", "flat"])
def test_segment_readout_adds_the_nll_of_each_token_read_from_its_segments_conditioning(decoder):
    ids = texts(real=(13, 9, 16))  # 4 segments of 4; the second text's last two are padding
    tf_keras.utils.set_random_seed(4)
    model = build_hvae(HVAEConfig(decoder=decoder, beta_max=0.0, segment_readout=0.5, posterior_sampling=False, **TINY), VOCAB)
    model(ids, training=True)
    mu, _ = model.encode(ids, training=True)
    if decoder == "hierarchical":
        source = model.segment_embeddings(mu, 4)
    else:  # z beside a code of the segment's index, the same for every text
        source = tf.concat([tf.tile(mu[:, None], [1, 4, 1]), tf.tile(_segment_positions(4)[None], [3, 1, 1])], -1)
    log_p = tf.nn.log_softmax(tf.reshape(model.segment_readout(source), [3, 16, VOCAB])).numpy()
    real = ids.numpy() != 0
    expected = -sum(log_p[row, t, ids.numpy()[row, t]] for row in range(3) for t in range(16) if real[row, t])
    assert float(tf.add_n(model.losses)) == pytest.approx(0.5 * expected / real.sum(), rel=1e-4)


def test_scheduled_sampling_feeds_the_decoders_own_greedy_predictions_in_training_only():
    tf_keras.utils.set_random_seed(5)
    model = build_hvae(HVAEConfig(scheduled_sampling=1.0, **TINY), VOCAB)
    ids = texts(real=(16, 11, 6))
    z = tf.random.normal([3, model.config.latent_dim], seed=7)
    teacher_inputs = tf.concat([tf.fill([3, 1], tf.constant(1, tf.int64)), ids[:, :-1]], 1)  # BOS, then the text
    first_pass = model._logits_from_inputs(z, teacher_inputs, training=False).numpy()
    own = np.concatenate([np.ones([3, 1], np.int64), first_pass.argmax(-1)[:, :-1]], 1)
    own = np.where(teacher_inputs.numpy() == 0, 0, own)  # padding stays padding
    np.testing.assert_allclose(model.reconstruction_logits(z, ids, training=True).numpy(),
                               model._logits_from_inputs(z, tf.constant(own), training=False).numpy(), atol=1e-5)
    np.testing.assert_allclose(model.reconstruction_logits(z, ids).numpy(), first_pass, atol=1e-6)
    assert not np.array_equal(own, teacher_inputs.numpy())  # an untrained decoder's guesses differ from the text


def test_input_less_decoder_reads_nothing_of_the_text():
    model = build_hvae(HVAEConfig(word_dropout=1.0, **TINY), VOCAB)
    ids = texts(real=(16, 16, 16))
    z = tf.random.normal([3, model.config.latent_dim], seed=6)
    changed = (ids.numpy() + 1 - 3) % (VOCAB - 4) + 3
    np.testing.assert_allclose(model.reconstruction_logits(z, ids).numpy(),
                               model.reconstruction_logits(z, tf.constant(changed)).numpy(), atol=1e-6)
    step, state = model.decoder_step(z, 16)  # decoding matches training: the inputs are the unknown token
    logits, _ = step(tf.fill([3], tf.constant(5, tf.int64)), state, tf.constant(0))
    np.testing.assert_allclose(logits.numpy(), model.reconstruction_logits(z, ids).numpy()[:, 0], atol=1e-4)


def test_batch_normalised_mu_varies_across_texts_from_the_start():
    ids = texts(batch=3, real=(16, 16, 16), seed=5)
    plain = build_hvae(HVAEConfig(latent_batch_norm=False, embedding_scale=0.05, **TINY), VOCAB)
    normalised = build_hvae(HVAEConfig(latent_batch_norm=True, embedding_scale=0.05, **TINY), VOCAB)
    assert plain.encode(ids)[0].numpy().std(0).mean() < 0.05
    assert normalised.encode(ids, training=True)[0].numpy().std(0).mean() > 0.5


def test_decoder_reset_at_the_end_of_the_warmup_renews_the_decoder_and_keeps_the_encoder():
    config = HVAEConfig(warmup_steps=3, reset_decoder=True, **TINY)
    model = build_hvae(config, VOCAB)
    compile_language_model(model, hvae_optimizer(config, 10))
    (callback,) = model.training_callbacks()
    callback.set_model(model)
    encoder = [w.copy() for w in model.encoder_lower.get_weights()]
    decoder = [w.copy() for layer in model.decoder_layers() for w in layer.get_weights()]
    model.optimizer.iterations.assign(2)
    callback.on_train_batch_begin(0)
    assert all((a == b).all() for a, b in zip(decoder, [w for layer in model.decoder_layers() for w in layer.get_weights()]))
    model.optimizer.iterations.assign(3)
    callback.on_train_batch_begin(0)
    renewed = [w for layer in model.decoder_layers() for w in layer.get_weights()]
    assert not any((a == b).all() for a, b in zip(decoder, renewed) if a.ndim > 1)  # kernels; biases start the same
    assert all((a == b).all() for a, b in zip(encoder, model.encoder_lower.get_weights()))
    assert build_hvae(HVAEConfig(warmup_steps=3, **TINY), VOCAB).training_callbacks() == []


@pytest.mark.parametrize("summary", ["segments", "local"])
def test_segment_summaries_ignore_padding_and_see_every_segment(summary):
    """`encoder_summary: segments` and `local`: mu is the same however much padding follows the
    text, and a change in a middle segment moves it."""
    tf_keras.utils.set_random_seed(2)
    model = build_hvae(HVAEConfig(encoder_summary=summary, **TINY), VOCAB)
    ids = texts(batch=2, length=12, real=(12, 7))
    padded = tf.concat([ids, tf.zeros([2, 8], tf.int64)], axis=1)  # two more segments of padding
    np.testing.assert_allclose(model.encode(padded)[0].numpy(), model.encode(ids)[0].numpy(), atol=1e-5)
    changed = ids.numpy().copy()
    changed[0, 5] = (changed[0, 5] + 1 - 3) % (VOCAB - 4) + 3  # segment 1 of 3
    moved = np.abs(model.encode(tf.constant(changed))[0].numpy() - model.encode(ids)[0].numpy())
    assert moved[0].max() > 1e-4 and moved[1].max() < 1e-6


@pytest.mark.parametrize("decoder", ["hierarchical", "flat"])
def test_a_code_per_segment_gives_each_segment_its_own_part_of_z(decoder):
    """`latent_per_segment`: z holds latent_dim units per segment. Segment 0 reads its own code
    and the codes' average (which starts the conductor or the flat decoder): a change of the
    later codes that keeps the average leaves its logits as they were, and moves segment 3's."""
    tf_keras.utils.set_random_seed(4)
    config = HVAEConfig(decoder=decoder, encoder_summary="local", latent_per_segment=True, decoder_reads_z=True, **TINY)
    model = build_hvae(config, VOCAB)
    ids = texts(real=(16, 16, 16))
    mu, sigma = model.encode(ids)
    assert mu.shape == sigma.shape == (3, 4 * TINY["latent_dim"]) == (3, model.latent_size(16))
    codes = model.segment_codes(mu, 4).numpy()
    d = TINY["latent_dim"]
    np.testing.assert_array_equal(codes[:, 2], mu.numpy()[:, 2 * d : 3 * d])
    moved = mu.numpy().copy()
    moved[:, 3 * d :] += 1.0  # segment 3's code up
    moved[:, d : 2 * d] -= 1.0  # segment 1's down by as much: the average is kept
    np.testing.assert_allclose(model.text_code(tf.constant(moved)).numpy(), model.text_code(mu).numpy(), atol=1e-5)
    before = model.reconstruction_logits(mu, ids).numpy()
    after = model.reconstruction_logits(tf.constant(moved), ids).numpy()
    np.testing.assert_allclose(after[:, :4], before[:, :4], atol=1e-5)  # segment 0: its code and the average kept
    assert not np.allclose(after[:, 12:], before[:, 12:], atol=1e-3)
    with pytest.raises(ValueError, match="latent_per_segment needs encoder_summary: local"):
        HVAEConfig(latent_per_segment=True)
