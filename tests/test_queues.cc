// The device queues and events of kernels/ops.h ("Queues and events") and the
// encoder's double-buffered async forward that uses them, checked on the CPU
// by an emulated device whose queues really run out of order.
//
// The emulator: a device that calls itself CUDA with the CPU's kernels, where
// nothing runs when it is queued. Every op (on the compute queue), every async
// copy (on its queue) and every event record or wait is appended to its
// queue; at a sync (or a synchronous copy, or a free) the queues are drained
// in a random order that respects only what CUDA guarantees: each queue in
// order, and a wait holds its queue until the event's latest record made
// before the wait was queued has run. The order: the queues in a priority
// order, the first runnable one runs its next item, and the priorities are
// reshuffled (a seeded std::mt19937) at 1 step in 64 on average, so one queue
// can run far ahead of, or lag far behind, the others (a uniform pick per
// step almost never lets a kernel overtake a copy queued long before it). A copy reads
// its host buffer when it runs, as a DMA does. So a missing event (an upload
// into a buffer that a queued kernel still reads, a download before the
// kernel that writes it, a kernel overwriting an output not yet downloaded)
// gives wrong numbers for some seeds, and the tests compare bit for bit with
// the plain CPU result over several seeds. The first test shows the emulator
// does catch such missing events.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <algorithm>
#include <deque>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "test_util.h"

extern "C" {
#include "affinity.h"
#include "nn/model.h"
#include "ops.h"
#include "ops_table.h"
}

namespace {

struct Event {
  int recorded = 0;  // records queued so far
  int done = 0;      // the latest record that has run
};

struct Item {
  enum Kind { Run, Record, Wait } kind;
  std::function<void()> fn;  // Run
  Event *ev = nullptr;       // Record, Wait
  int gen = 0;               // Record: its number; Wait: the record it waits for
  long seq = 0;              // order of queueing over all queues
};

struct Emu {
  af_backend_ops table{};
  std::deque<Item> q[AF_N_QUEUES];
  std::vector<std::unique_ptr<Event>> events;
  std::mt19937 rng;
  long seq = 0;
  af_status failed = AF_OK;  // the first failure of a deferred op
  af_error deferred_err{};
  bool deadlock = false;
  long overtakes = 0;  // copies that ran before compute work queued earlier
  int prio[AF_N_QUEUES] = {0, 1, 2};  // the runnable queue first in it runs next

  explicit Emu(unsigned seed);
  af_device device() {
    af_device d = af_device_cpu(0);
    d.backend = AF_BACKEND_CUDA;  // separate "device" memory, the async path
    d.ctx = this;
    d.ops = &table;
    return d;
  }
  void push(int queue, Item it) {
    it.seq = seq++;
    q[queue].push_back(std::move(it));
  }
  bool runnable(int i) const {
    if (q[i].empty()) return false;
    const Item &h = q[i].front();
    return h.kind != Item::Wait || h.ev->done >= h.gen;
  }
  // Runs queued work in a random order until every queue is empty (or only
  // the compute queue, with compute_only).
  void drain(bool compute_only = false) {
    while (compute_only ? !q[AF_QUEUE_COMPUTE].empty()
                        : !(q[0].empty() && q[1].empty() && q[2].empty())) {
      if (std::uniform_int_distribution<int>(0, 63)(rng) == 0)
        std::shuffle(prio, prio + AF_N_QUEUES, rng);
      int i = -1;
      for (int k = 0; k < AF_N_QUEUES && i < 0; k++)
        if (runnable(prio[k])) i = prio[k];
      if (i < 0) {
        deadlock = true;
        for (auto &x : q) x.clear();
        return;
      }
      Item it = std::move(q[i].front());
      q[i].pop_front();
      if (i != AF_QUEUE_COMPUTE && !q[AF_QUEUE_COMPUTE].empty() &&
          q[AF_QUEUE_COMPUTE].front().seq < it.seq && it.kind == Item::Run)
        overtakes++;
      if (it.kind == Item::Run) it.fn();
      else if (it.kind == Item::Record) it.ev->done = std::max(it.ev->done, it.gen);
    }
  }
};

Emu *E(void *ctx) { return static_cast<Emu *>(ctx); }

// A compute op of the CPU table, queued instead of run: its arguments are
// kept by value and the CPU kernel runs when the emulator reaches it (the
// af_error * argument, last, is replaced by the emulator's own).
template <auto M> struct Deferred;
template <typename... A, af_status (*af_backend_ops::*M)(void *, A...)>
struct Deferred<M> {
  static af_status fn(void *ctx, A... a) {
    Emu *e = E(ctx);
    std::tuple<A...> args(a...);
    Item it{Item::Run, {}, nullptr, 0, 0};
    it.fn = [e, args]() mutable {
      std::get<sizeof...(A) - 1>(args) = &e->deferred_err;
      af_status st = std::apply(
          [](auto... x) { return (af_cpu_backend_ops.*M)(nullptr, x...); }, args);
      if (st != AF_OK && e->failed == AF_OK) e->failed = st;
    };
    e->push(AF_QUEUE_COMPUTE, std::move(it));
    return AF_OK;
  }
};

#define DEFER(name) t.name = Deferred<&af_backend_ops::name>::fn

Emu::Emu(unsigned seed) : rng(seed) {
  af_backend_ops &t = table;
  t.name = "emulated-queues";
  t.malloc = [](void *, size_t bytes, void **out, af_error *) {
    *out = std::malloc(bytes ? bytes : 1);
    if (!*out) return AF_ERR_NOMEM;
    std::memset(*out, 0xff, bytes);  // NaN floats, -1 ints: a read before a write shows
    return AF_OK;
  };
  t.free = [](void *ctx, void *p) {
    E(ctx)->drain();  // cudaFree waits for the device
    std::free(p);
  };
  t.memcpy = [](void *ctx, void *dst, const void *src, size_t bytes, int, af_error *) {
    Emu *e = E(ctx);
    Item it{Item::Run, [dst, src, bytes] { std::memcpy(dst, src, bytes); }, nullptr, 0, 0};
    e->push(AF_QUEUE_COMPUTE, std::move(it));  // queued on the compute stream, which is waited for
    e->drain(true);
    return AF_OK;
  };
  t.copy_async = [](void *ctx, int queue, void *dst, const void *src, size_t bytes, int,
                    af_error *) {
    Item it{Item::Run, [dst, src, bytes] { std::memcpy(dst, src, bytes); }, nullptr, 0, 0};
    E(ctx)->push(queue, std::move(it));
    return AF_OK;
  };
  t.sync = [](void *ctx, af_error *err) {
    Emu *e = E(ctx);
    e->drain();
    if (e->deadlock) return af_error_set(err, AF_ERR_INTERNAL, "emulated queues deadlocked");
    af_status st = e->failed;
    e->failed = AF_OK;
    return st == AF_OK ? AF_OK : af_error_set(err, st, "deferred op: %s", e->deferred_err.msg);
  };
  t.event_create = [](void *ctx, void **out, af_error *) {
    E(ctx)->events.push_back(std::make_unique<Event>());
    *out = E(ctx)->events.back().get();
    return AF_OK;
  };
  t.event_free = [](void *, void *) {};  // the emulator owns its events
  t.event_record = [](void *ctx, void *ev, int queue, af_error *) {
    Event *x = static_cast<Event *>(ev);
    E(ctx)->push(queue, Item{Item::Record, {}, x, ++x->recorded, 0});
    return AF_OK;
  };
  t.queue_wait = [](void *ctx, int queue, void *ev, af_error *) {
    Event *x = static_cast<Event *>(ev);
    E(ctx)->push(queue, Item{Item::Wait, {}, x, x->recorded, 0});
    return AF_OK;
  };
  // The encoder's forward ops, fp32 and bf16; any other op is "not implemented".
  DEFER(embedding_forward);
  DEFER(layernorm_forward);
  DEFER(linear_forward);
  DEFER(gelu_forward);
  DEFER(add_forward);
  DEFER(attention_forward);
  DEFER(mean_pool_forward);
  DEFER(cls_pool_forward);
  DEFER(l2norm_forward);
  DEFER(cast_bf16);
  DEFER(linear_bf16_forward);
  DEFER(bias_gelu_bf16_forward);
  DEFER(add_layernorm_forward);
  DEFER(attention_bf16_forward);
  DEFER(mean_pool_l2norm_forward);
}

// The emulator catches a missing event in both directions, and an event
// removes the error for every seed. Read-after-write: out = a + a on the
// compute queue after a's upload on the upload queue. Write-after-read: a's
// second upload (new values) after the kernel that must still see the first.
TEST(Queues, EmulatorCatchesAMissingEventInBothDirections) {
  const int n = 64;
  std::vector<float> first(n), second(n);
  for (int i = 0; i < n; i++) first[i] = (float)i, second[i] = 1000.f + (float)i;
  std::vector<float> want(n);
  for (int i = 0; i < n; i++) want[i] = 2 * first[i];
  int raw_wrong = 0, war_wrong = 0, with_events_wrong = 0;
  for (int with_events = 0; with_events < 2; with_events++)
    for (unsigned seed = 0; seed < 32; seed++) {
      Emu emu(seed);
      af_device d = emu.device();
      af_error err{};
      float *a, *out;
      ASSERT_EQ(af_dev_alloc(&d, sizeof(float) * n, (void **)&a, &err), AF_OK);
      ASSERT_EQ(af_dev_alloc(&d, sizeof(float) * n, (void **)&out, &err), AF_OK);
      af_dev_event *up, *done;
      ASSERT_EQ(af_dev_event_create(&d, &up, &err), AF_OK);
      ASSERT_EQ(af_dev_event_create(&d, &done, &err), AF_OK);
      ASSERT_NE(up, nullptr);
      std::vector<float> host1 = first, host2 = second, got(n);
      ASSERT_EQ(af_dev_upload_async(&d, AF_QUEUE_UPLOAD, a, host1.data(), sizeof(float) * n, &err), AF_OK);
      ASSERT_EQ(af_dev_event_record(&d, up, AF_QUEUE_UPLOAD, &err), AF_OK);
      if (with_events) {
        ASSERT_EQ(af_dev_queue_wait(&d, AF_QUEUE_COMPUTE, up, &err), AF_OK);
      }
      ASSERT_EQ(af_op_add_forward(&d, out, a, a, n, &err), AF_OK);
      ASSERT_EQ(af_dev_event_record(&d, done, AF_QUEUE_COMPUTE, &err), AF_OK);
      if (with_events) {
        ASSERT_EQ(af_dev_queue_wait(&d, AF_QUEUE_UPLOAD, done, &err), AF_OK);
      }
      ASSERT_EQ(af_dev_upload_async(&d, AF_QUEUE_UPLOAD, a, host2.data(), sizeof(float) * n, &err), AF_OK);
      ASSERT_EQ(af_dev_sync(&d, &err), AF_OK) << err.msg;
      ASSERT_EQ(af_dev_download(&d, got.data(), out, sizeof(float) * n, &err), AF_OK);
      if (!with_events) {
        raw_wrong += std::isnan(got[1]);         // read before the upload
        war_wrong += got[1] == 2 * second[1];   // read after the second upload
      } else {
        with_events_wrong += got != want;
      }
      EXPECT_FALSE(emu.deadlock);
      af_dev_free(&d, a);
      af_dev_free(&d, out);
    }
  // Without the events some of the 32 orders read the poison (before the
  // upload) and some the second upload's values; with them none does.
  EXPECT_GT(raw_wrong, 0);
  EXPECT_GT(war_wrong, 0);
  EXPECT_EQ(with_events_wrong, 0);
}

// An event never recorded holds nothing up; a bad queue is refused; the CPU
// (no queues) has NULL events and runs the async copies at once.
TEST(Queues, UnrecordedEventsBadQueuesAndTheCpu) {
  Emu emu(1);
  af_device d = emu.device();
  af_error err{};
  af_dev_event *ev;
  ASSERT_EQ(af_dev_event_create(&d, &ev, &err), AF_OK);
  ASSERT_EQ(af_dev_queue_wait(&d, AF_QUEUE_DOWNLOAD, ev, &err), AF_OK);
  ASSERT_EQ(af_dev_sync(&d, &err), AF_OK);
  EXPECT_FALSE(emu.deadlock);
  EXPECT_EQ(af_dev_event_record(&d, ev, (af_queue)3, &err), AF_ERR_ARG);
  EXPECT_NE(std::string(err.msg).find("queue 3"), std::string::npos) << err.msg;

  af_device cpu = af_device_cpu(0);
  af_dev_event *none = (af_dev_event *)&err;
  ASSERT_EQ(af_dev_event_create(&cpu, &none, &err), AF_OK);
  EXPECT_EQ(none, nullptr);
  EXPECT_EQ(af_dev_event_record(&cpu, none, AF_QUEUE_UPLOAD, &err), AF_OK);
  EXPECT_EQ(af_dev_queue_wait(&cpu, AF_QUEUE_COMPUTE, none, &err), AF_OK);
  float src[3] = {1, 2, 3}, dst[3] = {0, 0, 0};
  ASSERT_EQ(af_dev_upload_async(&cpu, AF_QUEUE_UPLOAD, dst, src, sizeof src, &err), AF_OK);
  EXPECT_EQ(dst[2], 3.f);  // at once
  af_dev_event_free(&cpu, none);
}

// The pipelined embed through the out-of-order queues equals the plain CPU
// encode bit for bit, in fp32 and bf16, for several drain orders (exact: the
// same CPU kernels on the same packed batches; only the order of the copies
// around them varies). 4,300 texts of 1..11 words in 384-token batches: two
// chunks, ~90 batches of varying B and T, so the activations grow in between
// (a sync inside the queued work) and both slots are reused many times. The
// copies really do overtake kernels queued before them.
TEST(Queues, PipelinedEmbedOnOutOfOrderQueuesEqualsTheCpu) {
  std::string dir = aft::temp_dir("queues-embed");
  af_model m;
  af_error ae{};
  std::string src = aft::source_dir() + "/tests/data/tiny_bert_a";
  ASSERT_EQ(af_model_import_hf(src.c_str(), &m, &ae), AF_OK) << ae.msg;
  const int C = m.cfg.hidden_size;
  std::vector<std::string> store = aft::word_texts(
      4300, {"milk", "tea", "bread", "green", "organic", "whole", "中国", "frozen", "chocolate"}, 11);
  std::vector<const char *> texts;
  for (auto &t : store) texts.push_back(t.c_str());
  const int N = (int)texts.size();
  af_tokenizer *tok;
  ASSERT_EQ(af_model_tokenizer(&m, 0, &tok, &ae), AF_OK);
  af_embed_options o;
  af_embed_default_options(&o);
  o.batch_tokens = 384;
  for (af_precision p : {AF_PRECISION_FP32, AF_PRECISION_BF16}) {
    af_device cpu = af_device_cpu(0);
    af_encoder *ref_enc;
    ASSERT_EQ(af_encoder_create(&m, &cpu, &ref_enc, &ae), AF_OK);
    ASSERT_EQ(af_encoder_set_precision(ref_enc, p, &ae), AF_OK);
    std::vector<float> ref((size_t)N * C);
    o.pipeline = -1;
    ASSERT_EQ(af_embed_texts(ref_enc, tok, texts.data(), N, &o, ref.data(), &ae), AF_OK) << ae.msg;
    af_encoder_free(ref_enc);
    EXPECT_NE(std::memcmp(ref.data(), ref.data() + C, sizeof(float) * C), 0);  // rows differ
    for (unsigned seed : {1u, 2u, 3u}) {
      Emu emu(seed);
      af_device d = emu.device();
      af_encoder *enc;
      ASSERT_EQ(af_encoder_create(&m, &d, &enc, &ae), AF_OK) << ae.msg;
      ASSERT_EQ(af_encoder_set_precision(enc, p, &ae), AF_OK) << ae.msg;
      std::vector<float> got((size_t)N * C, std::nanf(""));
      o.pipeline = 0;  // the default on a non-CPU device: pipelined
      ASSERT_EQ(af_embed_texts(enc, tok, texts.data(), N, &o, got.data(), &ae), AF_OK) << ae.msg;
      EXPECT_FALSE(emu.deadlock);
      EXPECT_EQ(std::memcmp(got.data(), ref.data(), sizeof(float) * got.size()), 0)
          << "precision " << (int)p << " seed " << seed;
      EXPECT_GT(emu.overtakes, 100) << "the copies never ran beside earlier kernels";

      // The plain forward right after queued async batches (no sync between):
      // it waits for them, and both results are right.
      std::vector<int32_t> ids = {101, 7, 8, 102, 101, 9, 102}, cu = {0, 4, 7}, pos(7);
      af_batch b = {2, 7, ids.data(), cu.data()};
      std::vector<float> plain(2 * C), async(2 * C, std::nanf("")), want(2 * C);
      af_encoder *cenc;
      ASSERT_EQ(af_encoder_create(&m, &cpu, &cenc, &ae), AF_OK);
      ASSERT_EQ(af_encoder_set_precision(cenc, p, &ae), AF_OK);
      ASSERT_EQ(af_encoder_forward(cenc, &b, want.data(), nullptr, &ae), AF_OK);
      af_encoder_free(cenc);
      ASSERT_EQ(af_encoder_forward_async(enc, &b, pos.data(), async.data(), &ae), AF_OK);
      ASSERT_EQ(af_encoder_forward(enc, &b, plain.data(), nullptr, &ae), AF_OK) << ae.msg;
      EXPECT_EQ(plain, want);
      EXPECT_EQ(std::memcmp(async.data(), want.data(), sizeof(float) * want.size()), 0);
      af_encoder_free(enc);
    }
  }
  af_tokenizer_free(tok);
  af_model_free(&m);
}

}  // namespace
