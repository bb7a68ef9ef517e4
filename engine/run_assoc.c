/* The associate stage of `affinity run`: an INTERIM fusion used until
 * engine/fuse.h (`affinity associate`) is merged; it writes the same columns
 * (product_id,product,related_id,related,type,score,count,lift,cosine) so the
 * report, recommend and groups read either.
 *
 * For each product a:
 *   complements: co-purchased b with count(a,b) >= itemcf_min_count and
 *     lift > 1, scored by the item-CF cosine count/sqrt(n_a n_b);
 *   substitutes: text neighbours b (neighbors.h5, top score_k by inner
 *     product) with cosine >=
 *     substitute_min_cosine, in the same category when the catalog has
 *     categories, and not bought together more than chance (lift <= 1, or
 *     either product never sold); scored by the text cosine.
 * Up to assoc_k of each, best first. Products with no purchase history get
 * substitutes only (the real fusion backs complements off to the text model). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "atomic_file.h"
#include "embfile.h"
#include "nbrfile.h"
#include "run_stages.h"

typedef struct {
  int64_t b;
  double score, cosine, lift;
  int64_t count;
} cand;

static int cand_cmp(const void *x, const void *y) {
  const cand *a = x, *b = y;
  if (a->score != b->score)
    return a->score > b->score ? -1 : 1;
  return a->b < b->b ? -1 : a->b > b->b;
}

/* Cosine similarity (the embeddings of a normalising model have unit norm
 * already; a model without normalisation still gets a cosine here). */
static double cosine(const float *x, const float *y, int d) {
  double s = 0, nx = 0, ny = 0;
  for (int i = 0; i < d; i++) {
    s += (double)x[i] * y[i];
    nx += (double)x[i] * x[i];
    ny += (double)y[i] * y[i];
  }
  return nx > 0 && ny > 0 ? s / sqrt(nx * ny) : 0;
}

static void write_row(FILE *f, const af_catalog *c, int64_t a, const cand *x, const char *type) {
  af_run_csv_field(f, c->ids[a]);
  fputc(',', f);
  af_run_csv_field(f, c->names[a]);
  fputc(',', f);
  af_run_csv_field(f, c->ids[x->b]);
  fputc(',', f);
  af_run_csv_field(f, c->names[x->b]);
  fprintf(f, ",%s,%.6f,%lld,", type, x->score, (long long)x->count);
  if (isfinite(x->lift))
    fprintf(f, "%.6f", x->lift);
  fprintf(f, ",%.6f\n", x->cosine);
}

af_status af_stage_associate(af_run_data *d, char *const *out, af_error *err) {
  const af_run_options *o = d->o;
  const af_catalog *c = &d->catalog;
  char emb_path[AF_PATH_MAX], nbr_path[AF_PATH_MAX];
  AF_TRY(af_run_path(o->out_dir, "embeddings.h5", emb_path, err));
  AF_TRY(af_run_path(o->out_dir, "neighbors.h5", nbr_path, err));
  af_embeddings e = {0};
  af_neighbors nb = {0};
  int64_t *emb_row = NULL, *cat_nb = NULL; /* (catalog.n) catalog row -> embeddings / ids row */
  int64_t *nb_row = NULL;                    /* (nb.n_total) ids row -> catalog row */
  cand *cs = NULL;
  FILE *f = NULL;
  char tmp[AF_PATH_MAX];
  af_status st = af_embeddings_read(emb_path, &e, err);
  if (st == AF_OK)
    st = af_neighbors_read(nbr_path, &nb, err);
  if (st == AF_OK && d->have_baskets && !d->have_co) {
    st = af_cooccur_build(&d->baskets, 1, &d->co, err); /* every pair's true count */
    d->have_co = st == AF_OK;
  }
  if (st != AF_OK)
    goto done;
  emb_row = af_malloc((size_t)c->n + 1, sizeof *emb_row, err);
  nb_row = af_malloc((size_t)nb.n_total + 1, sizeof *nb_row, err); /* nbr id row -> catalog row */
  int64_t cap = (int64_t)nb.k + 16;
  if (d->have_co)
    for (int32_t a = 0; a < d->co.n_items; a++)
      if (d->co.offsets[a + 1] - d->co.offsets[a] + 16 > cap)
        cap = d->co.offsets[a + 1] - d->co.offsets[a] + 16;
  cs = af_malloc((size_t)cap, sizeof *cs, err);
  cat_nb = af_malloc((size_t)c->n + 1, sizeof *cat_nb, err);
  if (!emb_row || !nb_row || !cs || !cat_nb) {
    st = AF_ERR_NOMEM;
    goto done;
  }
  for (int64_t i = 0; i < c->n; i++)
    emb_row[i] = cat_nb[i] = -1;
  for (int64_t i = 0; i < e.n; i++) {
    int64_t r = af_catalog_find(c, e.ids[i]);
    if (r < 0) {
      st = af_error_set(err, AF_ERR_FORMAT, "%s: id '%s' is not in the catalog (stale file?)",
                        emb_path, e.ids[i]);
      goto done;
    }
    emb_row[r] = i;
  }
  for (int64_t i = 0; i < c->n; i++)
    if (emb_row[i] < 0) {
      st = af_error_set(err, AF_ERR_FORMAT, "%s: product '%s' has no embedding", emb_path, c->ids[i]);
      goto done;
    }
  for (int64_t i = 0; i < nb.n_total; i++) {
    nb_row[i] = af_catalog_find(c, nb.ids[i]);
    if (nb_row[i] < 0) {
      st = af_error_set(err, AF_ERR_FORMAT, "%s: id '%s' is not in the catalog", nbr_path, nb.ids[i]);
      goto done;
    }
    cat_nb[nb_row[i]] = i;
  }
  f = af_atomic_fopen(out[0], tmp, err);
  if (!f) {
    st = err ? err->code : AF_ERR_IO;
    goto done;
  }
  fputs("product_id,product,related_id,related,type,score,count,lift,cosine\n", f);
  const float *E = e.emb; /* (N, d) */
  int64_t nbasket = d->have_baskets ? d->baskets.n_baskets : 0;
  for (int64_t a = 0; a < c->n; a++) {
    const float *ea = E + emb_row[a] * e.d;
    /* complements */
    int64_t n = 0;
    if (d->have_co) {
      for (int64_t p = d->co.offsets[a]; p < d->co.offsets[a + 1]; p++) {
        int64_t b = d->co.nbr[p], cnt = d->co.count[p];
        if (cnt < o->itemcf_min_count)
          continue;
        double na = (double)d->co.item_count[a], nbb = (double)d->co.item_count[b];
        double lift = (double)cnt * (double)nbasket / (na * nbb);
        if (!(lift > 1))
          continue;
        cand x = {b, cnt / sqrt(na * nbb), cosine(ea, E + emb_row[b] * e.d, e.d), lift, cnt};
        cs[n++] = x;
      }
      qsort(cs, (size_t)n, sizeof *cs, cand_cmp);
      for (int64_t i = 0; i < n && i < o->assoc_k; i++)
        write_row(f, c, a, &cs[i], "complement");
    }
    /* substitutes */
    n = 0;
    int64_t r = cat_nb[a] - nb.row0; /* row of a in the neighbours arrays */
    if (cat_nb[a] < 0 || r >= nb.row_count)
      r = -1;
    for (int j = 0; r >= 0 && j < nb.k; j++) {
      int64_t q = nb.nbr[r * nb.k + j];
      if (q < 0)
        break;
      int64_t b = nb_row[q];
      double cosv = cosine(ea, E + emb_row[b] * e.d, e.d);
      if (cosv < o->substitute_min_cosine)
        continue;
      if (c->categories && strcmp(c->categories[a], c->categories[b]) != 0)
        continue;
      int64_t cnt = d->have_co ? af_cooccur_count(&d->co, (int32_t)a, (int32_t)b) : 0;
      double lift = NAN;
      if (d->have_co && d->item_baskets[a] > 0 && d->item_baskets[b] > 0)
        lift = (double)cnt * (double)nbasket / ((double)d->item_baskets[a] * d->item_baskets[b]);
      if (isfinite(lift) && lift > 1)
        continue;
      cand x = {b, cosv, cosv, lift, cnt};
      cs[n++] = x;
    }
    qsort(cs, (size_t)n, sizeof *cs, cand_cmp);
    for (int64_t i = 0; i < n && i < o->assoc_k; i++)
      write_row(f, c, a, &cs[i], "substitute");
  }
  st = af_atomic_fclose(f, tmp, out[0], err);
  f = NULL;
done:
  free(emb_row);
  free(cat_nb);
  free(nb_row);
  free(cs);
  af_neighbors_free(&nb);
  af_embeddings_free(&e);
  return st;
}
