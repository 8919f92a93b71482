#include "snap.h"
#include "sbuf.h"
#include "text.h"

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

static int has_path(const cJSON *paths, const char *path)
{
	const cJSON *p;
	if (!paths)
		return 1;
	cJSON_ArrayForEach(p, paths)
		if (cJSON_IsString(p) && !strcmp(p->valuestring, path))
			return 1;
	return 0;
}

/* ---- trees ---- */

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

int snap_checkout(const struct git_repo *r, const char *tree, const cJSON *paths, char *why,
		  size_t wn)
{
	const char *read[] = {"read-tree", tree, NULL};
	static const char *const checkout[] = {"checkout-index", "-f", "-z", "--stdin", NULL};
	char index[PATH_MAX + 64];
	size_t len = 0;
	char *list = nul_list(paths, &len);
	tmp_index(r, index, sizeof(index));
	int rc = !list || git_run(r, index, read, NULL, 0, NULL, NULL, why, wn) ||
		 git_run(r, index, checkout, list, len, NULL, NULL, why, wn);
	unlink(index);
	free(list);
	return rc ? -1 : 0;
}

void snap_remove(const struct git_repo *r, const char *path)
{
	char full[PATH_MAX];
	if (strstr(path, "..") || snprintf(full, sizeof(full), "%s/%s", r->top, path) >=
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

/* numstat -z: "added\tdeleted\tpath\0" ("-" for binary files). */
static void add_counts(cJSON *files, const char *out, size_t len)
{
	for (size_t i = 0; i < len;) {
		const char *rec = out + i;
		i += strlen(rec) + 1;
		const char *t1 = strchr(rec, '\t'), *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
		if (!t2)
			continue;
		cJSON *f;
		cJSON_ArrayForEach(f, files) {
			const char *file = cJSON_GetObjectItemCaseSensitive(f, "file")->valuestring;
			if (strcmp(file, t2 + 1))
				continue;
			cJSON_ReplaceItemInObjectCaseSensitive(f, "additions",
							       cJSON_CreateNumber(atof(rec)));
			cJSON_ReplaceItemInObjectCaseSensitive(f, "deletions",
							       cJSON_CreateNumber(atof(t1 + 1)));
		}
	}
}

/* Splits a diff-tree patch at its "diff --git a/P b/P" headers into each file's patch. */
static void add_patches(cJSON *files, const char *patch)
{
	cJSON *f;
	cJSON_ArrayForEach(f, files) {
		const char *file = cJSON_GetObjectItemCaseSensitive(f, "file")->valuestring;
		char *head = NULL;
		if (asprintf(&head, "diff --git a/%s b/%s\n", file, file) < 0)
			continue;
		const char *at = strncmp(patch, head, strlen(head)) ? NULL : patch;
		if (!at) {
			char *nl_head = NULL;
			if (asprintf(&nl_head, "\n%s", head) >= 0) {
				at = strstr(patch, nl_head);
				at = at ? at + 1 : NULL;
			}
			free(nl_head);
		}
		free(head);
		if (!at)
			continue;
		const char *end = strstr(at + 1, "\ndiff --git ");
		size_t n = end ? (size_t)(end - at) + 1 : strlen(at);
		char *one = strndup(at, n);
		if (one)
			cJSON_ReplaceItemInObjectCaseSensitive(f, "patch", cJSON_CreateString(one));
		free(one);
	}
}

/* The text of each blob named in a `cat-file --batch` answer, in order ("" for a
 * missing, binary or large one), set as key of files[i]. */
static void set_contents(const struct git_repo *r, cJSON *files, const char *tree,
			 const char *key)
{
	static const char *const args[] = {"cat-file", "--batch", NULL};
	char why[256];
	struct sbuf in = {0};
	cJSON *f;
	cJSON_ArrayForEach(f, files) {
		const char *name = cJSON_GetObjectItemCaseSensitive(f, "file")->valuestring;
		if (!strchr(name, '\n')) /* one line per name: such a name is left out */
			sbuf_printf(&in, "%s:%s\n", tree, name);
	}
	size_t len = 0, olen = 0;
	char *text = sbuf_take(&in, &len), *out = NULL;
	if (!text || git_run(r, NULL, args, text, len, &out, &olen, why, sizeof(why))) {
		free(text);
		return;
	}
	size_t i = 0;
	cJSON_ArrayForEach(f, files) {
		const char *name = cJSON_GetObjectItemCaseSensitive(f, "file")->valuestring;
		if (strchr(name, '\n'))
			continue;
		if (i >= olen)
			break;
		const char *line = out + i;
		size_t n = strcspn(line, "\n");
		i += n + 1;
		char type[16] = "";
		unsigned long long size = 0;
		if (sscanf(line, "%*s %15s %llu", type, &size) != 2)
			continue; /* "<name> missing" */
		const char *body = out + i;
		i += (size_t)size + 1;
		if (i > olen + 1 || strcmp(type, "blob") || size > SNAP_CONTENT_MAX)
			continue;
		char bwhy[64];
		if (text_is_binary(name, (const unsigned char *)body, (size_t)size, bwhy,
				   sizeof(bwhy)))
			continue;
		char *clean = text_utf8_clean(body, (size_t)size, NULL);
		if (clean)
			cJSON_ReplaceItemInObjectCaseSensitive(f, key, cJSON_CreateString(clean));
		free(clean);
	}
	free(text);
	free(out);
}

static const char *status_name(char s)
{
	return s == 'A' ? "added" : s == 'D' ? "deleted" : "modified";
}

cJSON *snap_diff(const struct git_repo *r, const char *a, const char *b, const cJSON *paths,
		 char *why, size_t wn)
{
	const char *numstat[] = {"diff-tree", "-r", "-z", "--no-renames", "--numstat", a, b, NULL};
	cJSON *changes = snap_changes(r, a, b, why, wn), *files = cJSON_CreateArray(), *c;
	cJSON_ArrayForEach(c, changes) {
		const char *st = cJSON_GetArrayItem(c, 0)->valuestring;
		const char *path = cJSON_GetArrayItem(c, 1)->valuestring;
		if (!has_path(paths, path))
			continue;
		cJSON *f = cJSON_CreateObject();
		cJSON_AddStringToObject(f, "file", path);
		cJSON_AddStringToObject(f, "before", "");
		cJSON_AddStringToObject(f, "after", "");
		cJSON_AddNumberToObject(f, "additions", 0);
		cJSON_AddNumberToObject(f, "deletions", 0);
		cJSON_AddStringToObject(f, "status", status_name(st[0]));
		cJSON_AddStringToObject(f, "patch", "");
		cJSON_AddItemToArray(files, f);
	}
	int failed = !changes;
	cJSON_Delete(changes);
	if (failed || !files || !cJSON_GetArraySize(files)) {
		if (failed) {
			cJSON_Delete(files);
			return NULL;
		}
		return files;
	}
	char *out = NULL, *patch;
	size_t len = 0;
	if (!git_run(r, NULL, numstat, NULL, 0, &out, &len, why, wn))
		add_counts(files, out, len);
	free(out);
	if ((patch = snap_patch(r, a, b, why, wn)))
		add_patches(files, patch);
	free(patch);
	set_contents(r, files, a, "before");
	set_contents(r, files, b, "after");
	return files;
}
