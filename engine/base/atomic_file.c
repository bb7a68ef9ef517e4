/* Whole-or-nothing output files (see atomic_file.h). */
#define _POSIX_C_SOURCE 200809L
#include "affinity.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

static int process_gone(long pid);

/* Removes "<final_path>.tmp.<pid>" of dead processes (see af_tmp_path). */
static void clean_stale_siblings(const char *final_path) {
  char dir[AF_PATH_MAX];
  const char *slash = strrchr(final_path, '/');
  const char *base = slash ? slash + 1 : final_path;
  if (!slash)
    snprintf(dir, sizeof dir, ".");
  else if (slash == final_path)
    snprintf(dir, sizeof dir, "/");
  else if ((size_t)(slash - final_path) < sizeof dir)
    snprintf(dir, sizeof dir, "%.*s", (int)(slash - final_path), final_path);
  else
    return;
  size_t blen = strlen(base);
  DIR *d = blen ? opendir(dir) : NULL;
  if (!d)
    return;
  struct dirent *e;
  char path[AF_PATH_MAX];
  while ((e = readdir(d)) != NULL) {
    const char *rest = e->d_name + blen;
    if (strncmp(e->d_name, base, blen) != 0 || strncmp(rest, ".tmp.", 5) != 0 ||
        strchr(rest + 5, '.') || !process_gone(af_tmp_name_pid(e->d_name)))
      continue;
    int n = snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    struct stat sb;
    if (n > 0 && n < (int)sizeof path && lstat(path, &sb) == 0 && S_ISREG(sb.st_mode))
      unlink(path);
  }
  closedir(d);
}

af_status af_tmp_path(const char *final_path, char *tmp, af_error *err) {
  int n = snprintf(tmp, AF_PATH_MAX, "%s.tmp.%ld", final_path, (long)getpid());
  if (n < 0 || n >= AF_PATH_MAX)
    return af_error_set(err, AF_ERR_ARG, "%s: path too long", final_path);
  clean_stale_siblings(final_path);
  return AF_OK;
}

af_status af_commit_file(const char *tmp, const char *final_path, af_error *err) {
  int fd = open(tmp, O_RDONLY);
  if (fd >= 0) {
    (void)fsync(fd);
    close(fd);
  }
  if (rename(tmp, final_path) != 0) {
    int e = errno;
    remove(tmp);
    return af_error_set(err, AF_ERR_IO, "%s: cannot rename %s into place: %s", final_path, tmp,
                        strerror(e));
  }
  return AF_OK;
}

void af_discard_file(const char *tmp) {
  if (tmp && tmp[0])
    remove(tmp);
}

af_status af_atomic_open(const char *final_path, char *tmp, FILE **out, af_error *err) {
  *out = NULL;
  AF_TRY(af_tmp_path(final_path, tmp, err));
  *out = fopen(tmp, "wb");
  if (!*out)
    return af_error_set(err, AF_ERR_IO, "%s: cannot create: %s", final_path, strerror(errno));
  return AF_OK;
}

void af_atomic_abort(FILE *f, const char *tmp) {
  if (f)
    fclose(f);
  af_discard_file(tmp);
}

af_status af_atomic_fclose(FILE *f, const char *tmp, const char *final_path, af_error *err) {
  int bad = ferror(f);
  if (fclose(f) != 0 || bad) {
    remove(tmp);
    return af_error_set(err, AF_ERR_IO, "%s: write failed", final_path);
  }
  return af_commit_file(tmp, final_path, err);
}

long af_tmp_name_pid(const char *name) {
  const char *t = strstr(name, ".tmp.");
  if (!t || t == name)
    return 0;
  const char *next; /* the last ".tmp." decides: "a.tmp.1.tmp.2" is pid 2 */
  while ((next = strstr(t + 1, ".tmp.")) != NULL)
    t = next;
  const char *d = t + 5;
  long pid = 0;
  if (!*d || strlen(d) > 9)
    return 0;
  for (; *d; d++) {
    if (*d < '0' || *d > '9')
      return 0;
    pid = pid * 10 + (*d - '0');
  }
  return pid;
}

static int process_gone(long pid) {
  return pid > 0 && pid != (long)getpid() && kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

af_status af_clean_stale_tmp(const char *dir, int *removed, af_error *err) {
  if (removed)
    *removed = 0;
  DIR *d = opendir(dir);
  if (!d)
    return af_error_set(err, AF_ERR_IO, "%s: cannot list the folder: %s", dir, strerror(errno));
  char path[AF_PATH_MAX];
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (!process_gone(af_tmp_name_pid(e->d_name)))
      continue;
    int n = snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    struct stat sb;
    if (n < 0 || n >= (int)sizeof path || lstat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
      continue;
    if (unlink(path) == 0 && removed)
      (*removed)++;
  }
  closedir(d);
  return AF_OK;
}
