/* BERT WordPiece tokenizer: BertNormalizer -> BertPreTokenizer -> WordPiece,
 * streamed one code point at a time with no allocation per call.
 *
 * encode walks the UTF-8 text once. Each code point is normalized on its own
 * (unicode_bert.c), the result is split into words at whitespace and around
 * punctuation, and each finished word (at most 100 code points, else [UNK])
 * is split greedily into the longest vocab pieces, "##"-prefixed after the
 * first. The vocab is an open-addressing hash table over the token bytes. */
#include "affinity.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/unicode_bert.h"

#define AF_WORD_MAX_CHARS 100 /* longer words become [UNK] (max_input_chars_per_word) */
#define AF_N_SPECIAL 5

static const char *const special_names[AF_N_SPECIAL] = {"[CLS]", "[SEP]", "[UNK]", "[PAD]", "[MASK]"};

struct af_tokenizer {
  af_tokenizer_options opt;
  int lowercase, strip_accents, chinese; /* the options resolved to 0 or 1 */
  int n_vocab;
  char *arena;            /* all tokens, NUL-terminated, in id order */
  const char **tokens;    /* (V,) into arena */
  int32_t *token_len;     /* (V,) bytes */
  int32_t *slot_id;       /* (S,) token id or -1; S a power of two >= 2V */
  uint32_t *slot_tag;     /* (S,) high 32 bits of the token's hash */
  uint64_t slot_mask;     /* S - 1 */
  int max_token_bytes;
  int32_t cls, sep, unk, pad;
  int n_special;          /* literal special tokens matched in raw text */
  int32_t special_id[AF_N_SPECIAL];
};

/* ---- hashing -------------------------------------------------------------- */

#define FNV_OFFSET 0xCBF29CE484222325ULL
#define FNV_PRIME 0x100000001B3ULL

static uint64_t fnv1a(uint64_t h, const unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    h = (h ^ p[i]) * FNV_PRIME;
  return h;
}

/* Hash of "##" followed by the piece, without building the string. */
static uint64_t piece_hash(int continuation, const unsigned char *p, size_t n) {
  uint64_t h = FNV_OFFSET;
  if (continuation)
    h = fnv1a(h, (const unsigned char *)"##", 2);
  return fnv1a(h, p, n);
}

/* Id of ("##" if continuation) + p[0..n), or -1. */
static int32_t lookup(const af_tokenizer *tok, int continuation, const unsigned char *p, size_t n) {
  uint64_t h = piece_hash(continuation, p, n);
  uint32_t tag = (uint32_t)(h >> 32);
  size_t want = n + (continuation ? 2 : 0);
  for (uint64_t i = h & tok->slot_mask;; i = (i + 1) & tok->slot_mask) {
    int32_t id = tok->slot_id[i];
    if (id < 0)
      return -1;
    if (tok->slot_tag[i] != tag || (size_t)tok->token_len[id] != want)
      continue;
    const char *t = tok->tokens[id];
    if (continuation) {
      if (t[0] != '#' || t[1] != '#')
        continue;
      t += 2;
    }
    if (memcmp(t, p, n) == 0)
      return id;
  }
}

/* ---- UTF-8 ---------------------------------------------------------------- */

/* Decodes one scalar value at s[0..n); returns its byte length, 0 if invalid
 * (truncated, overlong, surrogate, above U+10FFFF, stray continuation byte). */
static int utf8_decode(const unsigned char *s, size_t n, int32_t *cp) {
  unsigned c = s[0];
  if (c < 0x80) {
    *cp = (int32_t)c;
    return 1;
  }
  int len;
  int32_t v, min;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2, v = c & 0x1F, min = 0x80;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3, v = c & 0x0F, min = 0x800;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4, v = c & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if ((size_t)len > n)
    return 0;
  for (int i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80)
      return 0;
    v = (v << 6) | (s[i] & 0x3F);
  }
  if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
    return 0;
  *cp = v;
  return len;
}

static int utf8_encode(int32_t cp, unsigned char *out) {
  if (cp < 0x80) {
    out[0] = (unsigned char)cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = (unsigned char)(0xC0 | (cp >> 6));
    out[1] = (unsigned char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = (unsigned char)(0xE0 | (cp >> 12));
    out[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (unsigned char)(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = (unsigned char)(0xF0 | (cp >> 18));
  out[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
  out[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
  out[3] = (unsigned char)(0x80 | (cp & 0x3F));
  return 4;
}

/* Byte offset of the first invalid sequence in s[0..n), or n if valid. */
static size_t utf8_first_invalid(const unsigned char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    if (s[i] < 0x80) {
      i++;
      continue;
    }
    int32_t cp;
    int k = utf8_decode(s + i, n - i, &cp);
    if (k == 0)
      return i;
    i += (size_t)k;
  }
  return n;
}

/* ---- creation ------------------------------------------------------------- */

void af_tokenizer_default_options(af_tokenizer_options *opt) {
  opt->lowercase = 1;
  opt->strip_accents = -1;
  opt->tokenize_chinese_chars = 1;
  opt->max_len = 512;
}

void af_tokenizer_free(af_tokenizer *tok) {
  if (!tok)
    return;
  free(tok->arena);
  free(tok->tokens);
  free(tok->token_len);
  free(tok->slot_id);
  free(tok->slot_tag);
  free(tok);
}

static void table_insert(af_tokenizer *tok, int32_t id) {
  const unsigned char *t = (const unsigned char *)tok->tokens[id];
  size_t n = (size_t)tok->token_len[id];
  uint64_t h = fnv1a(FNV_OFFSET, t, n);
  uint32_t tag = (uint32_t)(h >> 32);
  for (uint64_t i = h & tok->slot_mask;; i = (i + 1) & tok->slot_mask) {
    int32_t other = tok->slot_id[i];
    if (other < 0 || (tok->slot_tag[i] == tag && tok->token_len[other] == (int32_t)n &&
                      memcmp(tok->tokens[other], t, n) == 0)) {
      tok->slot_id[i] = id; /* a later duplicate replaces the earlier id */
      tok->slot_tag[i] = tag;
      return;
    }
  }
}

af_status af_tokenizer_create(const char *const *vocab, int n_vocab, const af_tokenizer_options *opt,
                              af_tokenizer **out, af_error *err) {
  *out = NULL;
  af_tokenizer_options o;
  af_tokenizer_default_options(&o);
  if (opt)
    o = *opt;
  if (o.max_len < 2)
    return af_error_set(err, AF_ERR_ARG, "tokenizer: max_len must be at least 2 (got %d)", o.max_len);
  if (o.strip_accents < -1 || o.strip_accents > 1)
    return af_error_set(err, AF_ERR_ARG, "tokenizer: strip_accents must be -1, 0 or 1 (got %d)",
                        o.strip_accents);
  if (n_vocab <= 0 || n_vocab > (1 << 28))
    return af_error_set(err, AF_ERR_ARG, "tokenizer: vocab size %d out of range", n_vocab);

  size_t total = 0;
  for (int i = 0; i < n_vocab; i++) {
    if (!vocab[i])
      return af_error_set(err, AF_ERR_ARG, "tokenizer: vocab entry %d is NULL", i);
    size_t n = strlen(vocab[i]);
    if (utf8_first_invalid((const unsigned char *)vocab[i], n) != n)
      return af_error_set(err, AF_ERR_FORMAT, "tokenizer: vocab entry %d is not valid UTF-8", i);
    if (n > 0x7FFFFFFF - 8)
      return af_error_set(err, AF_ERR_FORMAT, "tokenizer: vocab entry %d is too long", i);
    total += n + 1;
  }

  af_tokenizer *tok = af_calloc(1, sizeof *tok, err);
  if (!tok)
    return AF_ERR_NOMEM;
  tok->opt = o;
  tok->strip_accents = o.strip_accents < 0 ? (o.lowercase != 0) : o.strip_accents;
  tok->lowercase = o.lowercase != 0;
  tok->chinese = o.tokenize_chinese_chars != 0;
  tok->n_vocab = n_vocab;
  uint64_t slots = 16;
  while (slots < 2 * (uint64_t)n_vocab)
    slots *= 2;
  tok->slot_mask = slots - 1;
  tok->arena = af_malloc(total, 1, err);
  tok->tokens = af_malloc((size_t)n_vocab, sizeof *tok->tokens, err);
  tok->token_len = af_malloc((size_t)n_vocab, sizeof *tok->token_len, err);
  tok->slot_id = af_malloc(slots, sizeof *tok->slot_id, err);
  tok->slot_tag = af_malloc(slots, sizeof *tok->slot_tag, err);
  if (!tok->arena || !tok->tokens || !tok->token_len || !tok->slot_id || !tok->slot_tag) {
    af_tokenizer_free(tok);
    return AF_ERR_NOMEM;
  }
  memset(tok->slot_id, 0xFF, slots * sizeof *tok->slot_id); /* all -1 */

  char *p = tok->arena;
  for (int i = 0; i < n_vocab; i++) {
    size_t n = strlen(vocab[i]);
    memcpy(p, vocab[i], n + 1);
    tok->tokens[i] = p;
    tok->token_len[i] = (int32_t)n;
    if ((int)n > tok->max_token_bytes)
      tok->max_token_bytes = (int)n;
    p += n + 1;
    table_insert(tok, i);
  }

  int32_t ids[AF_N_SPECIAL];
  for (int s = 0; s < AF_N_SPECIAL; s++) {
    ids[s] = af_tokenizer_token_id(tok, special_names[s]);
    if (ids[s] < 0 && s < 3) {
      af_tokenizer_free(tok);
      return af_error_set(err, AF_ERR_FORMAT, "tokenizer: the vocab has no %s token", special_names[s]);
    }
    if (ids[s] >= 0)
      tok->special_id[tok->n_special++] = ids[s];
  }
  tok->cls = ids[0];
  tok->sep = ids[1];
  tok->unk = ids[2];
  tok->pad = ids[3];
  *out = tok;
  return AF_OK;
}

af_status af_tokenizer_from_vocab_file(const char *path, const af_tokenizer_options *opt,
                                       af_tokenizer **out, af_error *err) {
  *out = NULL;
  FILE *f = fopen(path, "rb");
  if (!f)
    return af_error_set(err, AF_ERR_IO, "%s: cannot open vocab file", path);
  char *data = NULL;
  size_t size = 0, cap = 0;
  for (;;) {
    if (size == cap) {
      cap = cap ? cap * 2 : 1 << 16; /* doubling: a 30k-entry vocab.txt (~230 KB) takes 3 steps */
      char *grown = af_realloc(data, cap + 1, 1, err);
      if (!grown) {
        free(data);
        fclose(f);
        return AF_ERR_NOMEM;
      }
      data = grown;
    }
    size_t got = fread(data + size, 1, cap - size, f);
    size += got;
    if (got == 0)
      break;
  }
  int read_error = ferror(f);
  fclose(f);
  if (read_error) {
    free(data);
    return af_error_set(err, AF_ERR_IO, "%s: read error", path);
  }

  /* Split into lines in place at \n, \r\n or \r (Python's universal newlines,
   * as HF's load_vocab reads the file); a final newline ends the last line. */
  size_t max_lines = 1;
  for (size_t i = 0; i < size; i++)
    max_lines += data[i] == '\n' || data[i] == '\r';
  if (max_lines > (1u << 28)) {
    free(data);
    return af_error_set(err, AF_ERR_FORMAT, "%s: too many lines", path);
  }
  const char **lines = af_malloc(max_lines, sizeof *lines, err);
  if (!lines) {
    free(data);
    return AF_ERR_NOMEM;
  }
  size_t line = 0;
  af_status st = AF_OK;
  for (size_t i = 0; i < size && st == AF_OK;) {
    size_t start = i;
    while (i < size && data[i] != '\n' && data[i] != '\r')
      i++;
    size_t len = i - start;
    size_t next = i + (i < size) + (i + 1 < size && data[i] == '\r' && data[i + 1] == '\n');
    data[i] = '\0'; /* data has one spare byte past size */
    if (memchr(data + start, '\0', len))
      st = af_error_set(err, AF_ERR_FORMAT, "%s:%zu: NUL byte in token", path, line + 1);
    else if (utf8_first_invalid((const unsigned char *)data + start, len) != len)
      st = af_error_set(err, AF_ERR_FORMAT, "%s:%zu: invalid UTF-8", path, line + 1);
    lines[line++] = data + start;
    i = next;
  }
  if (st == AF_OK) {
    st = af_tokenizer_create(lines, (int)line, opt, out, err);
    if (st != AF_OK)
      af_error_prefix(err, "%s", path);
  }
  free(lines);
  free(data);
  return st;
}

/* ---- encoding ------------------------------------------------------------- */

typedef struct {
  const af_tokenizer *tok;
  int32_t *ids;  /* (cap,) output */
  int cap, n;    /* capacity, ids written */
  int limit;     /* wordpieces allowed: max_len - 2 */
  int pieces;    /* wordpieces written */
  int full;      /* the limit was reached: stop tokenizing */
  int overflow;  /* cap too small */
  int lowercase, strip_accents, chinese;
  int wlen;                                        /* code points in the current word */
  int32_t word[AF_WORD_MAX_CHARS + AF_BERT_NORM_MAX]; /* (wlen <= 101,) the current word */
} encoder;

static void push_piece(encoder *e, int32_t id) {
  if (e->pieces >= e->limit) {
    e->full = 1;
    return;
  }
  if (e->n + 2 > e->cap) { /* keep room for [SEP] */
    e->overflow = 1;
    e->full = 1;
    return;
  }
  e->ids[e->n++] = id;
  e->pieces++;
}

/* Greedy longest-match-first WordPiece over the current word. */
static void flush_word(encoder *e) {
  int nch = e->wlen;
  if (nch == 0)
    return;
  e->wlen = 0;
  const af_tokenizer *tok = e->tok;
  if (nch > AF_WORD_MAX_CHARS) {
    push_piece(e, tok->unk);
    return;
  }
  unsigned char bytes[AF_WORD_MAX_CHARS * 4]; /* (bytes,) the word in UTF-8 */
  int pos[AF_WORD_MAX_CHARS + 1];             /* (nch + 1,) byte offset of each char */
  pos[0] = 0;
  for (int i = 0; i < nch; i++)
    pos[i + 1] = pos[i] + utf8_encode(e->word[i], bytes + pos[i]);
  int32_t pieces[AF_WORD_MAX_CHARS]; /* (np,) */
  int np = 0;
  for (int start = 0; start < nch;) {
    int end = nch;
    int32_t id = -1;
    while (end > start && pos[end] - pos[start] > tok->max_token_bytes)
      end--;
    for (; end > start; end--) {
      id = lookup(tok, start > 0, bytes + pos[start], (size_t)(pos[end] - pos[start]));
      if (id >= 0)
        break;
    }
    if (id < 0) { /* no piece matches here: the whole word is [UNK] */
      push_piece(e, tok->unk);
      return;
    }
    pieces[np++] = id;
    start = end;
  }
  for (int i = 0; i < np; i++)
    push_piece(e, pieces[i]);
}

static void add_char(encoder *e, int32_t c) {
  if (e->wlen > AF_WORD_MAX_CHARS) /* already too long: it will be [UNK] */
    return;
  int j = e->wlen++;
  if (e->strip_accents && c >= 0x300) {
    /* NFD's canonical ordering: a mark moves before preceding marks of higher
     * combining class (only marks that survive stripping reach here). */
    int ccc = af_bert_combining_class(c);
    while (ccc && j > 0 && af_bert_combining_class(e->word[j - 1]) > ccc) {
      e->word[j] = e->word[j - 1];
      j--;
    }
  }
  e->word[j] = c;
}

/* Normalizes one raw code point and splits it into the current word. */
static void feed(encoder *e, int32_t cp) {
  if (cp < 128) { /* fast path: ASCII needs no tables */
    if ((cp >= 'a' && cp <= 'z') || (cp >= '0' && cp <= '9')) {
      add_char(e, cp);
    } else if (cp >= 'A' && cp <= 'Z') {
      add_char(e, e->lowercase ? cp + 32 : cp);
    } else if (cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r') {
      flush_word(e);
    } else if (cp > 32 && cp < 127) { /* the rest of printable ASCII is punctuation */
      flush_word(e);
      add_char(e, cp);
      flush_word(e);
    } /* other C0 controls and DEL are dropped */
    return;
  }
  int32_t norm[AF_BERT_NORM_MAX]; /* (k,) */
  int k = af_bert_normalize_cp(cp, e->lowercase, e->strip_accents, e->chinese, norm);
  for (int i = 0; i < k; i++) {
    int cls = af_bert_char_class(norm[i]);
    if (cls == AF_BERT_OTHER) {
      add_char(e, norm[i]);
    } else {
      flush_word(e);
      if (cls == AF_BERT_PUNCT) {
        add_char(e, norm[i]);
        flush_word(e);
      }
    }
  }
}

/* Id of the literal special token starting at s[0..n), or -1; sets *len. */
static int32_t match_special(const af_tokenizer *tok, const char *s, size_t n, size_t *len) {
  for (int i = 0; i < tok->n_special; i++) {
    int32_t id = tok->special_id[i];
    size_t m = (size_t)tok->token_len[id];
    if (m <= n && memcmp(s, tok->tokens[id], m) == 0) {
      *len = m;
      return id;
    }
  }
  return -1;
}

af_status af_tokenizer_encode(const af_tokenizer *tok, const char *text, size_t len, int32_t *ids,
                              int cap, int *n_ids, af_error *err) {
  *n_ids = 0;
  if (cap < 2)
    return af_error_set(err, AF_ERR_ARG, "tokenizer: output capacity %d is below 2", cap);
  if (!text && len > 0)
    return af_error_set(err, AF_ERR_ARG, "tokenizer: NULL text");
  encoder e;
  e.tok = tok;
  e.ids = ids;
  e.cap = cap;
  e.n = 0;
  e.limit = tok->opt.max_len - 2;
  e.pieces = 0;
  e.full = e.limit == 0;
  e.overflow = 0;
  e.lowercase = tok->lowercase;
  e.strip_accents = tok->strip_accents;
  e.chinese = tok->chinese;
  e.wlen = 0;
  ids[e.n++] = tok->cls;

  const unsigned char *s = (const unsigned char *)text;
  size_t i = 0;
  while (i < len && !e.full) {
    if (s[i] == '[') {
      size_t m;
      int32_t id = match_special(tok, text + i, len - i, &m);
      if (id >= 0) {
        flush_word(&e);
        push_piece(&e, id);
        i += m;
        continue;
      }
    }
    int32_t cp;
    int k = utf8_decode(s + i, len - i, &cp);
    if (k == 0)
      return af_error_set(err, AF_ERR_FORMAT, "tokenizer: invalid UTF-8 at byte %zu", i);
    feed(&e, cp);
    i += (size_t)k;
  }
  if (!e.full)
    flush_word(&e);
  if (i < len) { /* truncated: the rest must still be valid UTF-8 */
    size_t bad = i + utf8_first_invalid(s + i, len - i);
    if (bad < len)
      return af_error_set(err, AF_ERR_FORMAT, "tokenizer: invalid UTF-8 at byte %zu", bad);
  }
  if (e.overflow)
    return af_error_set(err, AF_ERR_ARG, "tokenizer: output capacity %d too small (max_len %d)", cap,
                        tok->opt.max_len);
  ids[e.n++] = tok->sep;
  *n_ids = e.n;
  return AF_OK;
}

/* ---- accessors ------------------------------------------------------------ */

int af_tokenizer_vocab_size(const af_tokenizer *tok) { return tok->n_vocab; }

const char *af_tokenizer_token(const af_tokenizer *tok, int32_t id) {
  return (id >= 0 && id < tok->n_vocab) ? tok->tokens[id] : NULL;
}

int32_t af_tokenizer_token_id(const af_tokenizer *tok, const char *token) {
  return lookup(tok, 0, (const unsigned char *)token, strlen(token));
}

const af_tokenizer_options *af_tokenizer_options_of(const af_tokenizer *tok) { return &tok->opt; }
int32_t af_tokenizer_cls_id(const af_tokenizer *tok) { return tok->cls; }
int32_t af_tokenizer_sep_id(const af_tokenizer *tok) { return tok->sep; }
int32_t af_tokenizer_unk_id(const af_tokenizer *tok) { return tok->unk; }
int32_t af_tokenizer_pad_id(const af_tokenizer *tok) { return tok->pad; }
