#include "snap.h"
#include "diff.h"
#include "sbuf.h"
#include "text.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *data_root;     /* DATA/workspace/snapshots, or NULL: off */
static int git_ok;
static pthread_mutex_t tree_lock = PTHREAD_MUTEX_INITIALIZER; /* the private indexes */
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_uint tmp_seq;

/* dir -> worktree, for the dirs found inside one (a dir outside git is asked again) */
struct known {
	struct known *next;
	char *dir;
	struct git_repo r;
};
static struct known *cache;

static int mkdirs(char *path)
{
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		int bad = mkdir(path, 0700) && errno != EEXIST;
		*p = '/';
		if (bad)
			return -1;
	}
	return mkdir(path, 0700) && errno != EEXIST ? -1 : 0;
}

int snap_init(const char *data_dir, char *const *envp)
{
	git_ok = git_init(envp) == 0;
	free(data_root);
	data_root = NULL;
	if (data_dir && asprintf(&data_root, "%s/workspace/snapshots", data_dir) < 0)
		data_root = NULL;
	return 0;
}

void snap_shutdown(void)
{
	pthread_mutex_lock(&cache_lock);
	while (cache) {
		struct known *k = cache;
		cache = k->next;
		free(k->dir);
		free(k);
	}
	pthread_mutex_unlock(&cache_lock);
	free(data_root);
	data_root = NULL;
	git_shutdown();
	git_ok = 0;
}

int snap_enabled(void)
{
	return git_ok && data_root;
}

static uint64_t fnv64(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
	return h;
}

/* The snapshot folder of r->top: objects/ and a note of whose it is. */
static int make_store(struct git_repo *r)
{
	char objects[PATH_MAX + 16];
	if (snprintf(r->store, sizeof(r->store), "%s/%016llx", data_root,
		     (unsigned long long)fnv64(r->top)) >= (int)sizeof(r->store) ||
	    snprintf(objects, sizeof(objects), "%s/objects", r->store) >= (int)sizeof(objects) ||
	    mkdirs(objects))
		return -1;
	char note[PATH_MAX + 16];
	snprintf(note, sizeof(note), "%s/worktree", r->store);
	FILE *f = fopen(note, "wx");
	if (f) {
		fprintf(f, "%s\n", r->top);
		fclose(f);
	}
	return 0;
}

int snap_repo(const char *dir, struct git_repo *r)
{
	if (!snap_enabled() || !dir)
		return -1;
	pthread_mutex_lock(&cache_lock);
	for (struct known *k = cache; k; k = k->next)
		if (!strcmp(k->dir, dir)) {
			*r = k->r;
			pthread_mutex_unlock(&cache_lock);
			return 0;
		}
	pthread_mutex_unlock(&cache_lock);
	if (git_discover(dir, r) || make_store(r))
		return -1;
	struct known *k = calloc(1, sizeof(*k));
	if (k && (k->dir = strdup(dir))) {
		k->r = *r;
		pthread_mutex_lock(&cache_lock);
		k->next = cache;
		cache = k;
		pthread_mutex_unlock(&cache_lock);
	} else {
		free(k);
	}
	return 0;
}

/* ---- small helpers ---- */

static void tmp_index(const struct git_repo *r, char *out, size_t n)
{
	snprintf(out, n, "%s/index.tmp-%ld-%u", r->store, (long)getpid(),
		 atomic_fetch_add(&tmp_seq, 1));
}

/* The output's first line, if it is a hash. */
static int take_hash(char *text, char tree[GIT_HASH_MAX], char *why, size_t wn)
{
	size_t n = text ? strcspn(text, "\n") : 0;
	if (n < 40 || n >= GIT_HASH_MAX) {
		snprintf(why, wn, "git wrote no tree id");
		free(text);
		return -1;
	}
	memcpy(tree, text, n);
	tree[n] = 0;
	free(text);
	return 0;
}

/* The paths, NUL-terminated one after another (for --stdin -z). */
static char *nul_list(const cJSON *paths, size_t *len)
{
	struct sbuf b = {0};
	const cJSON *p;
	cJSON_ArrayForEach(p, paths)
		if (cJSON_IsString(p))
			sbuf_add(&b, p->valuestring, strlen(p->valuestring) + 1);
	sbuf_add(&b, "", 0);
	return sbuf_take(&b, len);
}

/* ---- trees ---- */

int snap_has(const struct git_repo *r, const char *tree)
{
	char spec[GIT_HASH_MAX + 8], why[256];
	snprintf(spec, sizeof(spec), "%s^{tree}", tree);
	const char *args[] = {"cat-file", "-e", spec, NULL};
	return git_run(r, NULL, args, NULL, 0, NULL, NULL, why, sizeof(why));
}

/* A git directory with no refs (HEAD names an unborn branch): what `git prune` walks
 * from is then the private index alone. */
static int shadow_gitdir(const char *dir)
{
	char p[PATH_MAX + 16];
	struct stat st;
	snprintf(p, sizeof(p), "%s/HEAD", dir);
	if (!stat(p, &st))
		return 0;
	snprintf(p, sizeof(p), "%s/refs", dir);
	if (mkdirs(p))
		return -1;
	snprintf(p, sizeof(p), "%s/HEAD", dir);
	FILE *f = fopen(p, "w");
	if (!f)
		return -1;
	int bad = fputs("ref: refs/heads/snapshots\n", f) < 0;
	return fclose(f) || bad ? -1 : 0;
}

/* Prunes the store in data_root/name: its objects older than expire ("7.days.ago") that
 * neither its index nor a younger object refers to. */
static int prune_store(const char *name, const char *expire, char *why, size_t wn)
{
	struct git_repo r = {0};
	const char *prune[] = {"prune", expire, NULL};
	if (snprintf(r.store, sizeof(r.store), "%s/%s", data_root, name) >= (int)sizeof(r.store) ||
	    snprintf(r.gitdir, sizeof(r.gitdir), "%s/shadow", r.store) >= (int)sizeof(r.gitdir)) {
		snprintf(why, wn, "%s/%s: path too long", data_root, name);
		return -1;
	}
	snprintf(r.top, sizeof(r.top), "%s", r.store);
	if (shadow_gitdir(r.gitdir)) {
		snprintf(why, wn, "cannot make %.300s: %s", r.gitdir, strerror(errno));
		return -1;
	}
	pthread_mutex_lock(&tree_lock);
	int rc = git_run(&r, NULL, prune, NULL, 0, NULL, NULL, why, wn);
	pthread_mutex_unlock(&tree_lock);
	return rc;
}

int snap_prune(int days, char *why, size_t wn)
{
	char expire[64], one[512];
	int rc = 0;
	snprintf(expire, sizeof(expire), "--expire=%d.days.ago", days);
	DIR *d = snap_enabled() ? opendir(data_root) : NULL;
	for (struct dirent *e; d && (e = readdir(d));) {
		if (e->d_name[0] == '.' || prune_store(e->d_name, expire, one, sizeof(one)) == 0)
			continue;
		if (!rc)
			snprintf(why, wn, "%s/%s: %s", data_root, e->d_name, one);
		rc = -1;
	}
	if (d)
		closedir(d);
	return rc;
}

int snap_tree(const struct git_repo *r, char tree[GIT_HASH_MAX], char *why, size_t wn)
{
	static const char *const add[] = {"add", "-A", "--", ".", NULL};
	static const char *const write[] = {"write-tree", NULL};
	char *out = NULL;
	pthread_mutex_lock(&tree_lock);
	int rc = git_run(r, NULL, add, NULL, 0, NULL, NULL, why, wn) ||
		 git_run(r, NULL, write, NULL, 0, &out, NULL, why, wn);
	pthread_mutex_unlock(&tree_lock);
	return rc ? -1 : take_hash(out, tree, why, wn);
}

cJSON *snap_changes(const struct git_repo *r, const char *a, const char *b, char *why,
		    size_t wn)
{
	const char *args[] = {"diff-tree", "-r", "-z", "--no-renames", "--name-status", a, b,
			      NULL};
	char *out = NULL;
	size_t len = 0;
	if (git_run(r, NULL, args, NULL, 0, &out, &len, why, wn))
		return NULL;
	cJSON *arr = cJSON_CreateArray();
	for (size_t i = 0; arr && i < len;) {
		const char *status = out + i;
		i += strlen(status) + 1;
		if (i >= len)
			break;
		const char *path = out + i;
		i += strlen(path) + 1;
		cJSON *pair = cJSON_CreateArray();
		char st[2] = {status[0], 0};
		cJSON_AddItemToArray(pair, cJSON_CreateString(st));
		cJSON_AddItemToArray(pair, cJSON_CreateString(path));
		cJSON_AddItemToArray(arr, pair);
	}
	free(out);
	return arr;
}

int snap_partial(const struct git_repo *r, const char *base, const cJSON *paths,
		 char tree[GIT_HASH_MAX], char *why, size_t wn)
{
	const char *read[] = {"read-tree", base, NULL};
	static const char *const update[] = {"update-index", "--add", "--remove", "-z", "--stdin",
					     NULL};
	static const char *const write[] = {"write-tree", NULL};
	char index[PATH_MAX + 64], *out = NULL;
	size_t len = 0;
	char *list = nul_list(paths, &len);
	tmp_index(r, index, sizeof(index));
	int rc = !list || (base && git_run(r, index, read, NULL, 0, NULL, NULL, why, wn)) ||
		 git_run(r, index, update, list, len, NULL, NULL, why, wn) ||
		 git_run(r, index, write, NULL, 0, &out, NULL, why, wn);
	unlink(index);
	free(list);
	if (rc) {
		free(out);
		return -1;
	}
	return take_hash(out, tree, why, wn);
}

/* What `git cat-file --batch-check` says of tree:path for each path: one line each. */
static char *batch_check(const struct git_repo *r, const char *tree, const cJSON *paths,
			 char *why, size_t wn)
{
	static const char *const args[] = {"cat-file", "--batch-check", NULL};
	struct sbuf in = {0};
	const cJSON *p;
	cJSON_ArrayForEach(p, paths)
		if (cJSON_IsString(p) && !strchr(p->valuestring, '\n'))
			sbuf_printf(&in, "%s:%s\n", tree, p->valuestring);
	size_t len = 0;
	char *text = sbuf_take(&in, &len), *out = NULL;
	if (!text || git_run(r, NULL, args, text, len, &out, NULL, why, wn))
		out = NULL;
	free(text);
	return out;
}

cJSON *snap_present(const struct git_repo *r, const char *tree, const cJSON *paths, char *why,
		    size_t wn)
{
	char *out = batch_check(r, tree, paths, why, wn), *line = out;
	cJSON *arr = out ? cJSON_CreateArray() : NULL;
	const cJSON *p, *list = arr ? paths : NULL;
	cJSON_ArrayForEach(p, list) {
		if (!cJSON_IsString(p) || strchr(p->valuestring, '\n'))
			continue;
		size_t n = strcspn(line, "\n");
		int missing = n >= 8 && !memcmp(line + n - 8, " missing", 8);
		if (n && !missing)
			cJSON_AddItemToArray(arr, cJSON_CreateString(p->valuestring));
		line += n + (line[n] == '\n');
	}
	free(out);
	return arr;
}

/* argv for `git CMD... -- paths` (borrowed strings; free the array). */
static const char **with_paths(const char *const *head, const cJSON *paths)
{
	size_t n = 0, k = 0;
	while (head[n])
		n++;
	const char **argv = calloc(n + (size_t)cJSON_GetArraySize(paths) + 2, sizeof(char *));
	const cJSON *p;
	if (!argv)
		return NULL;
	for (; k < n; k++)
		argv[k] = head[k];
	argv[k++] = "--";
	cJSON_ArrayForEach(p, paths)
		if (cJSON_IsString(p))
			argv[k++] = p->valuestring;
	return argv;
}

/* Only the paths' entries of tree go into a fresh index (`ls-tree` of those paths fed
 * to `update-index --index-info`), so the work follows the paths, not the tree's size. */
int snap_checkout(const struct git_repo *r, const char *tree, const cJSON *paths, char *why,
		  size_t wn)
{
	const char *const list[] = {"ls-tree", "-r", "-z", tree, NULL};
	static const char *const info[] = {"update-index", "-z", "--index-info", NULL};
	static const char *const checkout[] = {"checkout-index", "-a", "-f", NULL};
	char index[PATH_MAX + 64], *entries = NULL;
	size_t len = 0;
	const char **argv = with_paths(list, paths);
	tmp_index(r, index, sizeof(index));
	int rc = !argv || git_run(r, NULL, argv, NULL, 0, &entries, &len, why, wn) ||
		 (len && (git_run(r, index, info, entries, len, NULL, NULL, why, wn) ||
			  git_run(r, index, checkout, NULL, 0, NULL, NULL, why, wn)));
	unlink(index);
	free(argv);
	free(entries);
	return rc ? -1 : 0;
}

/* Does path (relative, '/'-separated) climb out: an absolute path or a ".." part? */
static int climbs(const char *path)
{
	if (*path == '/')
		return 1;
	for (const char *p = path; p; p = strchr(p, '/') ? strchr(p, '/') + 1 : NULL)
		if (p[0] == '.' && p[1] == '.' && (p[2] == '/' || !p[2]))
			return 1;
	return 0;
}

void snap_remove(const struct git_repo *r, const char *path)
{
	char full[PATH_MAX];
	if (climbs(path) || snprintf(full, sizeof(full), "%s/%s", r->top, path) >=
			    (int)sizeof(full))
		return;
	if (unlink(full) && errno != ENOENT)
		return;
	size_t top = strlen(r->top);
	for (char *slash = strrchr(full, '/'); slash && (size_t)(slash - full) > top;
	     slash = strrchr(full, '/')) {
		*slash = 0;
		if (rmdir(full))
			break; /* not empty (or not ours to remove) */
	}
}

/* ---- what changed ---- */

char *snap_patch(const struct git_repo *r, const char *a, const char *b, char *why, size_t wn)
{
	const char *args[] = {"diff-tree", "-r", "-p", "--no-renames", "--no-color", a, b, NULL};
	char *out = NULL;
	size_t len = 0;
	if (git_run(r, NULL, args, NULL, 0, &out, &len, why, wn))
		return NULL;
	char *clean = text_utf8_clean(out, len, NULL);
	free(out);
	return clean;
}

/* ---- FileDiff, computed here over the paths' contents ---- */

struct side {
	int exists, known; /* known: data holds its content (else it is over the bound) */
	char sha[GIT_HASH_MAX];
	char *data;
	size_t len;
};

/* The blobs tree has at paths (one `cat-file --batch-check`, then one `--batch` for
 * those within SNAP_CONTENT_MAX). */
static int tree_sides(const struct git_repo *r, const char *tree, const cJSON *paths,
		      struct side *out, char *why, size_t wn)
{
	static const char *const batch[] = {"cat-file", "--batch", NULL};
	char *check = batch_check(r, tree, paths, why, wn), *line = check;
	struct sbuf want = {0};
	const cJSON *p;
	int i = 0;
	if (!check)
		return -1;
	cJSON_ArrayForEach(p, paths) {
		if (strchr(p->valuestring, '\n')) { /* not asked: batch_check leaves it out */
			i++;
			continue;
		}
		size_t n = strcspn(line, "\n");
		char type[16] = "";
		unsigned long long size = 0;
		if (sscanf(line, "%64s %15s %llu", out[i].sha, type, &size) == 3 &&
		    !strcmp(type, "blob")) {
			out[i].exists = 1;
			if (size <= SNAP_CONTENT_MAX) {
				out[i].known = 1;
				sbuf_printf(&want, "%s\n", out[i].sha);
			}
		}
		line += n + (line[n] == '\n');
		i++;
	}
	free(check);
	size_t len = 0, olen = 0;
	char *in = sbuf_take(&want, &len), *out_text = NULL;
	if (!in || (len && git_run(r, NULL, batch, in, len, &out_text, &olen, why, wn))) {
		free(in);
		return -1;
	}
	size_t at = 0;
	for (int k = 0; k < i && out_text; k++) {
		if (!out[k].known)
			continue;
		unsigned long long size = 0;
		size_t n = strcspn(out_text + at, "\n");
		if (sscanf(out_text + at, "%*s %*s %llu", &size) != 1 || at + n + 1 + size > olen)
			break;
		at += n + 1;
		out[k].data = malloc(size + 1);
		if (out[k].data) {
			memcpy(out[k].data, out_text + at, size);
			out[k].data[size] = 0;
			out[k].len = size;
		} else {
			out[k].known = 0;
		}
		at += size + 1;
	}
	free(in);
	free(out_text);
	return 0;
}

/* The paths as the worktree has them now: files read, links' targets (as git keeps
 * them); a file over SNAP_CONTENT_MAX gets its blob id from `git hash-object`. */
static void worktree_sides(const struct git_repo *r, const cJSON *paths, struct side *out)
{
	const cJSON *p;
	int i = 0;
	cJSON_ArrayForEach(p, paths) {
		struct side *x = &out[i++];
		char full[PATH_MAX], why[256];
		struct stat st;
		if (snprintf(full, sizeof(full), "%s/%s", r->top, p->valuestring) >= (int)sizeof(full) ||
		    lstat(full, &st) || !(S_ISREG(st.st_mode) || S_ISLNK(st.st_mode)))
			continue;
		x->exists = 1;
		if (S_ISLNK(st.st_mode)) {
			char target[PATH_MAX];
			ssize_t n = readlink(full, target, sizeof(target) - 1);
			x->known = n >= 0 && (x->data = strndup(target, (size_t)(n >= 0 ? n : 0)));
			x->len = n > 0 ? (size_t)n : 0;
			continue;
		}
		if (st.st_size > SNAP_CONTENT_MAX) {
			const char *const args[] = {"hash-object", "--", p->valuestring, NULL};
			char *out_text = NULL;
			if (!git_run(r, NULL, args, NULL, 0, &out_text, NULL, why, sizeof(why)))
				snprintf(x->sha, sizeof(x->sha), "%.*s", (int)strcspn(out_text, "\n"),
					 out_text);
			free(out_text);
			continue;
		}
		FILE *f = fopen(full, "rb");
		x->data = f ? malloc((size_t)st.st_size + 1) : NULL;
		x->len = x->data ? fread(x->data, 1, (size_t)st.st_size, f) : 0;
		if (x->data) {
			x->data[x->len] = 0;
			x->known = 1;
		}
		if (f)
			fclose(f);
	}
}

static int same(const struct side *a, const struct side *b)
{
	if (a->exists != b->exists)
		return 0;
	if (!a->exists)
		return 1;
	if (a->known && b->known)
		return a->len == b->len && !memcmp(a->data, b->data, a->len);
	return a->sha[0] && !strcmp(a->sha, b->sha);
}

static int is_text(const char *name, const struct side *x)
{
	char why[64];
	return x->known && !text_is_binary(name, (const unsigned char *)x->data, x->len, why,
					   sizeof(why));
}

/* One FileDiff: contents (text only), counts and patch from diff.c's unified diff. */
static cJSON *file_diff(const char *path, const struct side *a, const struct side *b)
{
	int text = (!a->exists || is_text(path, a)) && (!b->exists || is_text(path, b));
	cJSON *f = cJSON_CreateObject();
	char *before = text && a->exists ? text_utf8_clean(a->data, a->len, NULL) : NULL;
	char *after = text && b->exists ? text_utf8_clean(b->data, b->len, NULL) : NULL;
	char *body = text ? diff_unified(path, before ? before : "", before ? strlen(before) : 0,
					 after ? after : "", after ? strlen(after) : 0) : NULL;
	int adds = 0, dels = 0;
	for (const char *l = body; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : "") {
		if (*l == '+' && strncmp(l, "+++ ", 4))
			adds++;
		else if (*l == '-' && strncmp(l, "--- ", 4))
			dels++;
	}
	char *patch = NULL;
	if (asprintf(&patch, "diff --git a/%s b/%s\n%s", path, path,
		     body ? body : "Binary files differ\n") < 0)
		patch = NULL;
	cJSON_AddStringToObject(f, "file", path);
	cJSON_AddStringToObject(f, "before", before ? before : "");
	cJSON_AddStringToObject(f, "after", after ? after : "");
	cJSON_AddNumberToObject(f, "additions", adds);
	cJSON_AddNumberToObject(f, "deletions", dels);
	cJSON_AddStringToObject(f, "status", !a->exists ? "added" : !b->exists ? "deleted"
									 : "modified");
	cJSON_AddStringToObject(f, "patch", patch ? patch : "");
	free(before);
	free(after);
	free(body);
	free(patch);
	return f;
}

cJSON *snap_diff(const struct git_repo *r, const char *a, const char *b, const cJSON *paths,
		 char *why, size_t wn)
{
	int n = cJSON_GetArraySize(paths);
	struct side *x = calloc((size_t)n + 1, sizeof(*x)), *y = calloc((size_t)n + 1, sizeof(*y));
	cJSON *files = NULL;
	if (!x || !y)
		snprintf(why, wn, "out of memory");
	else if (!tree_sides(r, a, paths, x, why, wn) &&
		 (b ? !tree_sides(r, b, paths, y, why, wn) : (worktree_sides(r, paths, y), 1)))
		files = cJSON_CreateArray();
	const cJSON *p, *list = files ? paths : NULL;
	int i = 0;
	cJSON_ArrayForEach(p, list) {
		/* a name with a line break cannot be asked of git line by line: left out */
		if (!strchr(p->valuestring, '\n') && !same(&x[i], &y[i]))
			cJSON_AddItemToArray(files, file_diff(p->valuestring, &x[i], &y[i]));
		i++;
	}
	for (i = 0; x && y && i < n; i++) {
		free(x[i].data);
		free(y[i].data);
	}
	free(x);
	free(y);
	return files;
}
