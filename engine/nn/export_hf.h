/* Export of a checkpoint as a Hugging Face BertModel + sentence-transformers
 * folder: model.safetensors (float32, Hugging Face names), config.json,
 * vocab.txt, tokenizer_config.json, special_tokens_map.json, modules.json,
 * 1_Pooling/config.json, sentence_bert_config.json,
 * config_sentence_transformers.json. SentenceTransformer(dir) loads it and
 * af_model_import_hf(dir) reads it back exactly (docs/training.md). */
#ifndef AF_EXPORT_HF_H
#define AF_EXPORT_HF_H

#include "base/error.h"
#include "nn/model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Writes every file into "<dir>.tmp.<pid>" first; then, when dir does not
 * exist, renames that folder to dir, else moves each file into dir with one
 * rename each (so no file of dir is ever half-written). */
af_status af_export_hf(const af_model *m, const char *dir, af_error *err);

#ifdef __cplusplus
}
#endif
#endif /* AF_EXPORT_HF_H */
