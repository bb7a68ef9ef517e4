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
/* 1 if path ends with suffix. */
int af_has_suffix(const char *path, const char *suffix);

#endif
