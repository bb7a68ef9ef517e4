/* Streaming RFC 4180 CSV reader.
 *
 * Quoted fields may hold the delimiter, "" (an escaped quote) and newlines.
 * Records end with LF or CRLF; a UTF-8 byte-order mark at the start is
 * skipped. Every field is checked to be valid UTF-8. Memory is O(longest
 * record): the reader keeps one read buffer and one record buffer.
 *
 * Errors name the file and the 1-based line: invalid UTF-8 gives the line of
 * the offending byte; an unterminated quote gives the line where the record
 * started; text after a closing quote (`"ab"c`) is an error too. A blank line
 * is returned as a record with one empty field; callers decide what it means. */
#ifndef AF_CSV_H
#define AF_CSV_H

#include <stdint.h>

#include "affinity.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct af_csv af_csv;

af_status af_csv_open(const char *path, char delimiter, af_csv **out, af_error *err);

/* Next record: (*fields)[i] is NUL-terminated, owned by the reader, valid until
 * the next call. At end of input *eof = 1 and *n_fields = 0. */
af_status af_csv_next(af_csv *r, char ***fields, int *n_fields, int *eof, af_error *err);

/* 1-based line where the current record started. */
int64_t af_csv_record_line(const af_csv *r);
const char *af_csv_path(const af_csv *r);
void af_csv_close(af_csv *r);

/* Finds `name` in a header row; error "FILE: no column 'name' (columns: a, b, c)". */
af_status af_csv_column(char *const *header, int n, const char *name, const char *path, int *idx,
                        af_error *err);


/* 1 when the n bytes at s are valid UTF-8 (no overlongs, no surrogates,
 * nothing above U+10FFFF). */
int af_utf8_valid(const char *s, size_t n);

#ifdef __cplusplus
}
#endif
#endif
