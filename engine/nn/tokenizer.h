/* BERT WordPiece tokenizer, identical to Hugging Face's BertTokenizerFast
 * (BertNormalizer + BertPreTokenizer + WordPiece + [CLS] ... [SEP]) for the
 * same vocab and options. See docs/tokenizer.md.
 *
 * A tokenizer is immutable after creation: af_tokenizer_encode is reentrant
 * and may be called from many threads at once; it allocates nothing. */
#ifndef AF_TOKENIZER_H
#define AF_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct af_tokenizer af_tokenizer; /* opaque */

typedef struct {
  int lowercase;              /* do_lower_case */
  int strip_accents;          /* 1, 0, or -1 = follow lowercase (HF's strip_accents=None) */
  int tokenize_chinese_chars; /* split CJK ideographs into single-character words */
  int max_len;                /* total ids including [CLS] and [SEP] (>= 2); truncation
                                 keeps the first max_len-2 wordpieces */
} af_tokenizer_options;

/* lowercase 1, strip_accents -1, tokenize_chinese_chars 1, max_len 512. */
void af_tokenizer_default_options(af_tokenizer_options *opt);

/* vocab[i] is the token with id i (n_vocab entries, NUL-terminated UTF-8).
 * [CLS], [SEP] and [UNK] must be present; [PAD] and [MASK] are optional. When a
 * token occurs twice, lookups give the later id (as HF's dict does). opt may be
 * NULL for the defaults. */
af_status af_tokenizer_create(const char *const *vocab, int n_vocab, const af_tokenizer_options *opt,
                              af_tokenizer **out, af_error *err);

/* One token per line (\n, \r\n or \r), id = line index, as HF's load_vocab
 * reads it. Errors name the file and line (invalid UTF-8, a NUL byte). */
af_status af_tokenizer_from_vocab_file(const char *path, const af_tokenizer_options *opt,
                                       af_tokenizer **out, af_error *err);

void af_tokenizer_free(af_tokenizer *tok);

/* Encodes UTF-8 text (len bytes, need not be NUL-terminated) into
 * [CLS] wordpieces... [SEP], truncated to max_len ids. Writes at most cap ids
 * (cap >= max_len is always enough; a smaller cap that the ids do not fit in
 * gives AF_ERR_ARG); *n_ids = count written. Invalid UTF-8 anywhere in the
 * text gives AF_ERR_FORMAT naming the byte offset. The literal special tokens
 * [CLS] [SEP] [UNK] [PAD] [MASK] in the text map to their ids, as in HF. */
af_status af_tokenizer_encode(const af_tokenizer *tok, const char *text, size_t len, int32_t *ids,
                              int cap, int *n_ids, af_error *err);

int af_tokenizer_vocab_size(const af_tokenizer *tok);
const char *af_tokenizer_token(const af_tokenizer *tok, int32_t id);    /* NULL if out of range */
int32_t af_tokenizer_token_id(const af_tokenizer *tok, const char *token); /* -1 if absent */
/* The options as given at creation (strip_accents may be -1). */
const af_tokenizer_options *af_tokenizer_options_of(const af_tokenizer *tok);
int32_t af_tokenizer_cls_id(const af_tokenizer *tok);
int32_t af_tokenizer_sep_id(const af_tokenizer *tok);
int32_t af_tokenizer_unk_id(const af_tokenizer *tok);
int32_t af_tokenizer_pad_id(const af_tokenizer *tok); /* -1 if the vocab has no [PAD] */

#ifdef __cplusplus
}
#endif
#endif /* AF_TOKENIZER_H */
