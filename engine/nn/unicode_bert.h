/* Per-code-point Unicode rules of BERT's tokenizer, as Hugging Face's
 * `tokenizers` (BertNormalizer + BertPreTokenizer) applies them.
 *
 * Categories, canonical decomposition and case mapping come from utf8proc;
 * small exception tables cover the code points where the Rust crate's own
 * (older or newer) Unicode tables disagree with utf8proc. See docs/tokenizer.md. */
#ifndef AF_UNICODE_BERT_H
#define AF_UNICODE_BERT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Most code points af_bert_normalize_cp can write for one input code point
 * (a Chinese character padded with spaces, or a full canonical decomposition
 * plus the two-character lowercase of U+0130). */
#define AF_BERT_NORM_MAX 24

/* BertPreTokenizer's view of one normalized code point. */
enum { AF_BERT_OTHER = 0, AF_BERT_SPACE = 1, AF_BERT_PUNCT = 2 };

/* BertNormalizer applied to one code point alone: text cleaning (drops
 * U+0000, U+FFFD and control/format/private-use characters; maps whitespace
 * to ' '), then ' ' c ' ' around CJK ideographs when `chinese`, then NFD with
 * non-spacing marks dropped when `strip_accents`, then lowercase when
 * `lowercase`. Writes the result to out (AF_BERT_NORM_MAX entries) and
 * returns how many code points it wrote (0 when the character is dropped). */
int af_bert_normalize_cp(int32_t cp, int lowercase, int strip_accents, int chinese, int32_t *out);

/* AF_BERT_SPACE, AF_BERT_PUNCT or AF_BERT_OTHER for a normalized code point. */
int af_bert_char_class(int32_t cp);

/* True for the code points BERT splits out as single-character words. */
int af_bert_is_chinese(int32_t cp);

/* Canonical combining class as the crate's NFD knows it (0 for starters and
 * for marks assigned after its Unicode version). */
int af_bert_combining_class(int32_t cp);

#ifdef __cplusplus
}
#endif
#endif /* AF_UNICODE_BERT_H */
