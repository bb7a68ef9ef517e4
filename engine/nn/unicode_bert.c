/* BERT's per-code-point Unicode rules, matching Hugging Face `tokenizers`.
 *
 * The Rust crate does not use one Unicode version:
 *   - control/format removal, punctuation and non-spacing marks come from the
 *     unicode_categories crate, whose tables are Unicode 8.0: characters
 *     assigned later are neither removed, punctuation nor stripped, and a few
 *     that changed category since (U+166D, U+111C9, U+1734) keep the old one;
 *   - NFD comes from unicode-normalization-alignments, whose decompositions
 *     predate Unicode 13 (it leaves U+11938 alone) and whose combining classes
 *     predate Unicode 10 (later marks are starters to its canonical ordering);
 *   - lowercase is Rust's char::to_lowercase (Unicode 16 in the wheel we
 *     compare against): full mapping, so U+0130 'İ' becomes "i\u0307", and
 *     it knows the Unicode 16 letters utf8proc 2.8 (Unicode 15) does not;
 *   - whitespace is char::is_whitespace (White_Space property).
 * We take categories, decompositions and case from utf8proc and correct it
 * with the exception tables below, generated from the reference library by
 * tools/reference/make_tokenizer_fixtures.py --unicode-exceptions; the test
 * UnicodeBlocksMatchHuggingFace checks every code point against it. */
#include "nn/unicode_bert.h"

#include <stddef.h>
#include <utf8proc.h>

typedef struct {
  int32_t lo, hi;
} af_cp_range;

typedef struct {
  int32_t lo, hi, delta;
} af_case_range;

static const af_cp_range keep_format[] = { /* 20 code points */
    {0x890, 0x891}, {0x8E2, 0x8E2}, {0x110CD, 0x110CD}, {0x13430, 0x1343F},
};
static const af_cp_range not_punct[] = { /* 127 code points */
    {0x61D, 0x61D}, {0x9FD, 0x9FD}, {0xA76, 0xA76}, {0xC77, 0xC77},
    {0xC84, 0xC84}, {0x1B7D, 0x1B7E}, {0x2E43, 0x2E4F}, {0x2E52, 0x2E5D},
    {0x10EAD, 0x10EAD}, {0x10F55, 0x10F59}, {0x10F86, 0x10F89}, {0x1144B, 0x1144F},
    {0x1145A, 0x1145B}, {0x1145D, 0x1145D}, {0x11660, 0x1166C}, {0x116B9, 0x116B9},
    {0x1183B, 0x1183B}, {0x11944, 0x11946}, {0x119E2, 0x119E2}, {0x11A3F, 0x11A46},
    {0x11A9A, 0x11A9C}, {0x11A9E, 0x11AA2}, {0x11B00, 0x11B09}, {0x11C41, 0x11C45},
    {0x11C70, 0x11C71}, {0x11EF7, 0x11EF8}, {0x11F43, 0x11F4F}, {0x11FFF, 0x11FFF},
    {0x12FF1, 0x12FF2}, {0x16E97, 0x16E9A}, {0x16FE2, 0x16FE2}, {0x1E95E, 0x1E95F},
};
static const af_cp_range extra_punct[] = { /* 2 code points */
    {0x166D, 0x166D}, {0x111C9, 0x111C9},
};
static const af_cp_range keep_mn[] = { /* 419 code points */
    {0x7FD, 0x7FD}, {0x898, 0x89F}, {0x8CA, 0x8E1}, {0x9FE, 0x9FE},
    {0xAFA, 0xAFF}, {0xB55, 0xB55}, {0xC04, 0xC04}, {0xC3C, 0xC3C},
    {0xD00, 0xD00}, {0xD3B, 0xD3C}, {0xD81, 0xD81}, {0xEBA, 0xEBA},
    {0xECE, 0xECE}, {0x180F, 0x180F}, {0x1885, 0x1886}, {0x1ABF, 0x1ACE},
    {0x1DF6, 0x1DFB}, {0xA82C, 0xA82C}, {0xA8C5, 0xA8C5}, {0xA8FF, 0xA8FF},
    {0xA9BD, 0xA9BD}, {0x10D24, 0x10D27}, {0x10EAB, 0x10EAC}, {0x10EFD, 0x10EFF},
    {0x10F46, 0x10F50}, {0x10F82, 0x10F85}, {0x11070, 0x11070}, {0x11073, 0x11074},
    {0x110C2, 0x110C2}, {0x111C9, 0x111C9}, {0x111CF, 0x111CF}, {0x1123E, 0x1123E},
    {0x11241, 0x11241}, {0x1133B, 0x1133B}, {0x11438, 0x1143F}, {0x11442, 0x11444},
    {0x11446, 0x11446}, {0x1145E, 0x1145E}, {0x1182F, 0x11837}, {0x11839, 0x1183A},
    {0x1193B, 0x1193C}, {0x1193E, 0x1193E}, {0x11943, 0x11943}, {0x119D4, 0x119D7},
    {0x119DA, 0x119DB}, {0x119E0, 0x119E0}, {0x11A01, 0x11A0A}, {0x11A33, 0x11A38},
    {0x11A3B, 0x11A3E}, {0x11A47, 0x11A47}, {0x11A51, 0x11A56}, {0x11A59, 0x11A5B},
    {0x11A8A, 0x11A96}, {0x11A98, 0x11A99}, {0x11C30, 0x11C36}, {0x11C38, 0x11C3D},
    {0x11C3F, 0x11C3F}, {0x11C92, 0x11CA7}, {0x11CAA, 0x11CB0}, {0x11CB2, 0x11CB3},
    {0x11CB5, 0x11CB6}, {0x11D31, 0x11D36}, {0x11D3A, 0x11D3A}, {0x11D3C, 0x11D3D},
    {0x11D3F, 0x11D45}, {0x11D47, 0x11D47}, {0x11D90, 0x11D91}, {0x11D95, 0x11D95},
    {0x11D97, 0x11D97}, {0x11EF3, 0x11EF4}, {0x11F00, 0x11F01}, {0x11F36, 0x11F3A},
    {0x11F40, 0x11F40}, {0x11F42, 0x11F42}, {0x13440, 0x13440}, {0x13447, 0x13455},
    {0x16F4F, 0x16F4F}, {0x16FE4, 0x16FE4}, {0x1CF00, 0x1CF2D}, {0x1CF30, 0x1CF46},
    {0x1E000, 0x1E006}, {0x1E008, 0x1E018}, {0x1E01B, 0x1E021}, {0x1E023, 0x1E024},
    {0x1E026, 0x1E02A}, {0x1E08F, 0x1E08F}, {0x1E130, 0x1E136}, {0x1E2AE, 0x1E2AE},
    {0x1E2EC, 0x1E2EF}, {0x1E4EC, 0x1E4EF}, {0x1E944, 0x1E94A},
};
static const af_cp_range extra_mn[] = { /* 1 code points */
    {0x1734, 0x1734},
};
static const af_cp_range no_nfd[] = { /* 1 code points */
    {0x11938, 0x11938},
};
static const af_cp_range no_ccc[] = { /* 108 code points */
    {0x7FD, 0x7FD}, {0x898, 0x89F}, {0x8CA, 0x8D3}, {0x9FE, 0x9FE},
    {0xC3C, 0xC3C}, {0xD3B, 0xD3C}, {0xEBA, 0xEBA}, {0x1715, 0x1715},
    {0x1ABF, 0x1ACE}, {0x1DF6, 0x1DFA}, {0xA82C, 0xA82C}, {0x10D24, 0x10D27},
    {0x10EAB, 0x10EAC}, {0x10EFD, 0x10EFF}, {0x10F46, 0x10F50}, {0x10F82, 0x10F85},
    {0x11070, 0x11070}, {0x1133B, 0x1133B}, {0x1145E, 0x1145E}, {0x11839, 0x1183A},
    {0x1193D, 0x1193E}, {0x11943, 0x11943}, {0x119E0, 0x119E0}, {0x11A34, 0x11A34},
    {0x11A47, 0x11A47}, {0x11A99, 0x11A99}, {0x11D42, 0x11D42}, {0x11D44, 0x11D45},
    {0x11D97, 0x11D97}, {0x11F41, 0x11F42}, {0x16FF0, 0x16FF1}, {0x1E08F, 0x1E08F},
    {0x1E130, 0x1E136}, {0x1E2AE, 0x1E2AE}, {0x1E2EC, 0x1E2EF}, {0x1E4EC, 0x1E4EF},
};
static const af_case_range lower_extra[] = { /* 55 code points */
    {0x1C89, 0x1C89, 1},
    {0xA7CB, 0xA7CB, -42343},
    {0xA7CC, 0xA7CC, 1},
    {0xA7CE, 0xA7CE, 1},
    {0xA7D2, 0xA7D2, 1},
    {0xA7D4, 0xA7D4, 1},
    {0xA7DA, 0xA7DA, 1},
    {0xA7DC, 0xA7DC, -42561},
    {0x10D50, 0x10D65, 32},
    {0x16EA0, 0x16EB8, 27},
};

#define AF_COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

static int in_ranges(int32_t cp, const af_cp_range *r, int n) {
  int lo = 0, hi = n - 1;
  while (lo <= hi) {
    int mid = (lo + hi) / 2;
    if (cp < r[mid].lo)
      hi = mid - 1;
    else if (cp > r[mid].hi)
      lo = mid + 1;
    else
      return 1;
  }
  return 0;
}

int af_bert_is_chinese(int32_t cp) {
  /* BERT's "CJK Unified Ideographs" blocks. The Rust crate starts the fifth
   * range at 0x2B920 (Python BERT: 0x2B820), so U+2B820..U+2B91F are not split. */
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
         (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
         (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B920 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

static int is_ascii_punct(int32_t cp) {
  return (cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) ||
         (cp >= 123 && cp <= 126);
}

int af_bert_char_class(int32_t cp) {
  if (cp < 128) {
    if (cp == ' ' || (cp >= 9 && cp <= 13))
      return AF_BERT_SPACE;
    return is_ascii_punct(cp) ? AF_BERT_PUNCT : AF_BERT_OTHER;
  }
  utf8proc_category_t cat = utf8proc_category(cp);
  if (cat == UTF8PROC_CATEGORY_ZS || cat == UTF8PROC_CATEGORY_ZL || cat == UTF8PROC_CATEGORY_ZP ||
      cp == 0x85)
    return AF_BERT_SPACE;
  if (cat >= UTF8PROC_CATEGORY_PC && cat <= UTF8PROC_CATEGORY_PO)
    return in_ranges(cp, not_punct, AF_COUNT(not_punct)) ? AF_BERT_OTHER : AF_BERT_PUNCT;
  return in_ranges(cp, extra_punct, AF_COUNT(extra_punct)) ? AF_BERT_PUNCT : AF_BERT_OTHER;
}

int af_bert_combining_class(int32_t cp) {
  if (cp < 0x300)
    return 0;
  int ccc = utf8proc_get_property(cp)->combining_class;
  return ccc && in_ranges(cp, no_ccc, AF_COUNT(no_ccc)) ? 0 : ccc;
}

/* What cleaning does: 0 drop, 1 map to ' ', 2 keep. */
static int clean_action(int32_t cp) {
  if (cp == 0 || cp == 0xFFFD)
    return 0;
  if (cp == '\t' || cp == '\n' || cp == '\r')
    return 1;
  utf8proc_category_t cat = utf8proc_category(cp);
  switch (cat) {
  case UTF8PROC_CATEGORY_CC:
  case UTF8PROC_CATEGORY_CS:
  case UTF8PROC_CATEGORY_CO:
    return 0;
  case UTF8PROC_CATEGORY_CF:
    return in_ranges(cp, keep_format, AF_COUNT(keep_format)) ? 2 : 0;
  case UTF8PROC_CATEGORY_ZS:
  case UTF8PROC_CATEGORY_ZL:
  case UTF8PROC_CATEGORY_ZP:
    return 1;
  default:
    return 2;
  }
}

static int is_stripped_mark(int32_t cp) {
  if (cp < 0x300)
    return 0;
  if (utf8proc_category(cp) == UTF8PROC_CATEGORY_MN)
    return !in_ranges(cp, keep_mn, AF_COUNT(keep_mn));
  return in_ranges(cp, extra_mn, AF_COUNT(extra_mn));
}

static int32_t to_lower(int32_t cp) {
  if (cp < 128)
    return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
  int32_t lo = utf8proc_tolower(cp);
  if (lo != cp || cp < lower_extra[0].lo)
    return lo;
  for (int i = 0; i < AF_COUNT(lower_extra); i++)
    if (cp >= lower_extra[i].lo && cp <= lower_extra[i].hi)
      return cp + lower_extra[i].delta;
  return cp;
}

int af_bert_normalize_cp(int32_t cp, int lowercase, int strip_accents, int chinese, int32_t *out) {
  int action = cp < 128 ? (cp >= 32 && cp != 127 ? 2 : (cp >= 9 && cp <= 13 && cp != 11 && cp != 12))
                        : clean_action(cp);
  if (action == 0)
    return 0;
  if (action == 1) {
    out[0] = ' ';
    return 1;
  }
  int pad = chinese && cp >= 0x3400 && af_bert_is_chinese(cp);
  int32_t *body = out + pad; // (n,) the normalized character between the pads
  int n = 1;
  body[0] = cp;
  if (strip_accents && cp >= 128) {
    if (!in_ranges(cp, no_nfd, AF_COUNT(no_nfd))) {
      int bound = 0;
      utf8proc_ssize_t m = utf8proc_decompose_char(cp, body, AF_BERT_NORM_MAX - 4,
                                                   UTF8PROC_DECOMPOSE, &bound);
      if (m > 0 && m <= AF_BERT_NORM_MAX - 4) {
        n = (int)m;
      } else { /* cannot happen for a valid code point; keep it unchanged */
        n = 1;
        body[0] = cp;
      }
    }
    int kept = 0;
    for (int i = 0; i < n; i++)
      if (!is_stripped_mark(body[i]))
        body[kept++] = body[i];
    n = kept;
  }
  if (lowercase) {
    for (int i = 0; i < n; i++) {
      if (body[i] == 0x130) { /* 'İ' lowercases to "i\u0307" (SpecialCasing) */
        for (int j = n; j > i + 1; j--)
          body[j] = body[j - 1];
        body[i] = 'i';
        body[i + 1] = 0x307;
        n++;
        i++;
      } else {
        body[i] = to_lower(body[i]);
      }
    }
  }
  if (pad) {
    out[0] = ' ';
    out[n + 1] = ' ';
    n += 2;
  }
  return n;
}
