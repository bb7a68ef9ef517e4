/* The category x category heatmaps as inline SVG: cell (i, j) counts the
 * complement rows of associations.csv from a product of category i to one of
 * category j, those with direct evidence (bought together in >= min_evidence
 * baskets) and those whose evidence is borrowed from text neighbours apart;
 * colour on a log scale (log(1+v)/log(1+max)), white to dark blue. */
#include <math.h>
#include <string.h>

#include "report/report_internal.h"

#define LEFT 170
#define TOP 150

static void heat_svg(const af_report_data *d, const double *heat, const char *id, FILE *f) {
  int n = d->n_cat;
  /* cells fill about 560 px, between 22 and 48 px each */
  int CELL = n > 0 ? 560 / n : 48;
  CELL = CELL < 22 ? 22 : CELL > 48 ? 48 : CELL;
  double max = 0;
  for (int i = 0; i < n * n; i++)
    if (heat[i] > max)
      max = heat[i];
  int w = LEFT + n * CELL + 20, h = TOP + n * CELL + 20;
  fprintf(f,
          "<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"%s\" width=\"%d\" height=\"%d\" "
          "viewBox=\"0 0 %d %d\" font-family=\"Noto Sans CJK SC, DejaVu Sans, sans-serif\" "
          "font-size=\"11\">\n<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n",
          id, w, h, w, h, w, h);
  for (int j = 0; j < n; j++) {
    char lab[96];
    af_utf8_truncate(d->cat_names[j], 22, lab, sizeof lab);
    fprintf(f, "<text transform=\"translate(%d,%d) rotate(-50)\">", LEFT + j * CELL + CELL / 2 + 4,
            TOP - 6);
    af_html_escape(f, lab);
    fputs("</text>\n", f);
  }
  for (int i = 0; i < n; i++) {
    char lab[96];
    af_utf8_truncate(d->cat_names[i], 24, lab, sizeof lab);
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">", LEFT - 6,
            TOP + i * CELL + CELL / 2 + 4);
    af_html_escape(f, lab);
    fputs("</text>\n", f);
    for (int j = 0; j < n; j++) {
      double v = heat[(int64_t)i * n + j];
      double t = max > 0 ? log1p(v) / log1p(max) : 0;
      char col[8];
      af_heat_color(t, col);
      fprintf(f,
              "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\" stroke=\"#dddddd\" "
              "stroke-width=\"0.5\"><title>",
              LEFT + j * CELL, TOP + i * CELL, CELL, CELL, col);
      af_html_escape(f, d->cat_names[i]);
      fputs(" \xe2\x86\x92 ", f);
      af_html_escape(f, d->cat_names[j]);
      fprintf(f, ": %.0f</title></rect>\n", v);
      if (v > 0)
        fprintf(f,
                "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"9\" fill=\"%s\" "
                "pointer-events=\"none\">%.0f</text>\n",
                LEFT + j * CELL + CELL / 2, TOP + i * CELL + CELL / 2 + 3,
                t > 0.55 ? "white" : "#333333", v);
    }
  }
  fputs("</svg>\n", f);
}

void af_report_heatmap_svg(const af_report_data *d, FILE *f) {
  heat_svg(d, d->heat, "heatmap-svg", f);
}

void af_report_heatmap_borrowed_svg(const af_report_data *d, FILE *f) {
  heat_svg(d, d->heat_borrowed, "heatmap-borrowed-svg", f);
}
