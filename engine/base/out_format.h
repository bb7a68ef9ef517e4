/* Writing CSV fields (RFC 4180 quoting) and JSON strings for the association
 * commands' outputs. */
#ifndef AF_OUT_FORMAT_H
#define AF_OUT_FORMAT_H

#include <stdio.h>

/* Writes s as one CSV field, quoted when it holds the delimiter, a quote, a
 * line break or leading/trailing space. */
void af_write_csv_field(FILE *f, const char *s);
/* Writes s as a JSON string literal (s is valid UTF-8). */
void af_write_json_string(FILE *f, const char *s);
/* Writes a double as JSON: %.17g, or null when not finite. */
void af_write_json_number(FILE *f, double x);
/* Writes x into dst (room for AF_G10_MAX bytes) exactly as snprintf's "%.10g"
 * would (same bytes, no terminator); returns the length. Formats with integer
 * arithmetic; falls back to snprintf near a rounding tie or outside 1e-300..1e300. */
#define AF_G10_MAX 32
int af_format_g10(char *dst, double x);
/* Writes a non-negative or negative integer in decimal; returns the length. */
int af_format_i64(char *dst, long long v);
/* 1 if path ends with suffix. */
int af_has_suffix(const char *path, const char *suffix);

#endif
