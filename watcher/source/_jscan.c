/* _jscan: the journal source's scan loop in C, with the GIL released.
 *
 * Why: the pure-Python loop (``_next()``, ``_get("MESSAGE")``, byte prefilter) costs
 * about 1.1 us per entry and holds the GIL, so reading and parsing share one core.
 * ``journalctl | grep`` uses two. This loop does the same work without the GIL, so a
 * scan runs in a helper thread while the event loop parses and decides the previous
 * batch. It returns only the entries that pass the prefilter.
 *
 * It borrows the ``sd_journal *`` of a ``systemd.journal.Reader`` (systemd-python's
 * ``_reader._Reader`` is ``{PyObject_HEAD; sd_journal *j;}``, checked by type name and
 * size), so matches, seeks, ``process()`` and the fd stay with the Reader. The caller
 * guarantees that no other thread touches the Reader during a scan.
 *
 * scan(reader, entry_type, max_scan, max_keep, prefilter, skip_until_us, with_fields
 *      [, max_message])
 *   -> (entries, scanned, end_cursor | None, end_realtime_us, skip_until_us)
 *
 * ``entries`` are ``entry_type(message, realtime, cursor, unit, identifier)`` exactly as
 * the Python loop in ``_journal.py`` builds them (message: str, or bytes when it is
 * not UTF-8; realtime: float seconds). ``prefilter`` 1 applies ``is_relevant`` (gate
 * byte, then either marker), 0 keeps everything. ``skip_until_us`` >= 0 skips entries
 * at or before that realtime and is returned as -1 once passed. A kept message longer
 * than ``max_message`` bytes (default 256 KiB, ``_journal.MAX_MESSAGE_BYTES``) is cut
 * there, backing off to the start of a UTF-8 character, before it is copied: the parser
 * reads no further, and a burst of huge messages must not fill a batch with them.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-journal.h>

typedef struct {
    PyObject_HEAD
    sd_journal *j;
} ReaderObject;

typedef struct {
    char *msg;
    size_t msg_len;
    uint64_t realtime;
    char *cursor;
    char *unit;
    size_t unit_len;
    char *ident;
    size_t ident_len;
    int has_unit, has_ident;
} Kept;

static const char GATE = 'k';
static const char MARK1[] = "fallback";
static const char MARK2[] = "lane task error";

static int relevant(const char *msg, size_t len) {
    if (!memchr(msg, GATE, len))
        return 0;
    return memmem(msg, len, MARK1, sizeof(MARK1) - 1) != NULL ||
           memmem(msg, len, MARK2, sizeof(MARK2) - 1) != NULL;
}

/* The value of FIELD (after "FIELD="); 0 when absent, <0 on error. */
static int get_field(sd_journal *j, const char *field, size_t field_len,
                     const char **value, size_t *value_len) {
    const void *data;
    size_t len;
    int r = sd_journal_get_data(j, field, &data, &len);
    if (r < 0)
        return r == -ENOENT ? 0 : r;
    if (len < field_len + 1) {
        *value = "";
        *value_len = 0;
    } else {
        *value = (const char *)data + field_len + 1;
        *value_len = len - field_len - 1;
    }
    return 1;
}

static char *copy(const char *s, size_t len) {
    char *out = malloc(len + 1);
    if (out) {
        memcpy(out, s, len);
        out[len] = '\0';
    }
    return out;
}

static void free_kept(Kept *kept, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++) {
        free(kept[i].msg);
        free(kept[i].cursor);
        free(kept[i].unit);
        free(kept[i].ident);
    }
    free(kept);
}

/* Where to cut a message of LEN bytes to at most LIMIT: on a UTF-8 character start,
 * backing off at most 3 bytes (same as ``_journal.cut_message``). */
static size_t cut_length(const char *msg, size_t len, size_t limit) {
    if (len <= limit)
        return len;
    size_t cut = limit;
    while (cut + 3 > limit && ((unsigned char)msg[cut] & 0xC0) == 0x80)
        cut--;
    return cut;
}

static PyObject *optional_text(const char *s, size_t len, int present) {
    if (!present)
        Py_RETURN_NONE;
    return PyUnicode_DecodeUTF8(s, (Py_ssize_t)len, "replace");
}

static PyObject *scan(PyObject *module, PyObject *args) {
    PyObject *reader, *entry_type;
    Py_ssize_t max_scan, max_keep;
    int prefilter, with_fields;
    long long skip_until;
    Py_ssize_t max_message = 256 * 1024;
    if (!PyArg_ParseTuple(args, "OOnnpLp|n", &reader, &entry_type, &max_scan, &max_keep,
                          &prefilter, &skip_until, &with_fields, &max_message))
        return NULL;
    PyTypeObject *type = Py_TYPE(reader);
    const char *dot = strrchr(type->tp_name, '.');
    const char *short_name = dot ? dot + 1 : type->tp_name;
    int is_reader = 0;
    for (PyTypeObject *t = type; t != NULL; t = t->tp_base) {
        const char *d = strrchr(t->tp_name, '.');
        if (strcmp(d ? d + 1 : t->tp_name, "_Reader") == 0 &&
            t->tp_basicsize == (Py_ssize_t)sizeof(ReaderObject)) {
            is_reader = 1;
            break;
        }
    }
    if (!is_reader) {
        PyErr_Format(PyExc_TypeError, "expected a systemd.journal Reader, not %s", short_name);
        return NULL;
    }
    sd_journal *j = ((ReaderObject *)reader)->j;
    if (j == NULL) {
        PyErr_SetString(PyExc_ValueError, "the journal reader is closed");
        return NULL;
    }
    if (max_keep < 1 || max_scan < 1 || max_message < 4) {
        PyErr_SetString(PyExc_ValueError,
                        "max_scan and max_keep must be at least 1, max_message at least 4");
        return NULL;
    }

    Kept *kept = calloc((size_t)max_keep, sizeof(Kept));
    if (!kept)
        return PyErr_NoMemory();
    Py_ssize_t n_kept = 0, scanned = 0;
    int err = 0;
    int nomem = 0;
    char *end_cursor = NULL;
    uint64_t end_realtime = 0;
    int have_end = 0;

    Py_BEGIN_ALLOW_THREADS
    while (scanned < max_scan) {
        int r = sd_journal_next(j);
        if (r < 0) { err = r; break; }
        if (r == 0) break;
        scanned++;
        uint64_t rt = 0;
        int have_rt = 0;
        if (skip_until >= 0) {
            r = sd_journal_get_realtime_usec(j, &rt);
            if (r < 0) { err = r; break; }
            have_rt = 1;
            if (rt <= (uint64_t)skip_until)
                continue;
            skip_until = -1;
        }
        const char *msg = "";
        size_t msg_len = 0;
        r = get_field(j, "MESSAGE", 7, &msg, &msg_len);
        if (r < 0) { err = r; break; }
        if (prefilter && !relevant(msg, msg_len))
            continue;
        if (!have_rt) {
            r = sd_journal_get_realtime_usec(j, &rt);
            if (r < 0) { err = r; break; }
        }
        msg_len = cut_length(msg, msg_len, (size_t)max_message);
        Kept *k = &kept[n_kept];
        k->realtime = rt;
        k->msg_len = msg_len;
        k->msg = copy(msg, msg_len);
        if (!k->msg) { nomem = 1; break; }
        n_kept++;
        r = sd_journal_get_cursor(j, &k->cursor);
        if (r < 0) { err = r; break; }
        if (with_fields) {
            const char *v;
            size_t vlen;
            r = get_field(j, "_SYSTEMD_UNIT", 13, &v, &vlen);
            if (r < 0) { err = r; break; }
            if (r > 0) {
                k->has_unit = 1;
                k->unit_len = vlen;
                if (!(k->unit = copy(v, vlen))) { nomem = 1; break; }
            }
            r = get_field(j, "SYSLOG_IDENTIFIER", 17, &v, &vlen);
            if (r < 0) { err = r; break; }
            if (r > 0) {
                k->has_ident = 1;
                k->ident_len = vlen;
                if (!(k->ident = copy(v, vlen))) { nomem = 1; break; }
            }
        }
        if (n_kept >= max_keep)
            break;
    }
    if (!err && !nomem && scanned > 0) {
        /* The entry we stand on: the last one read, kept or not. */
        int r = sd_journal_get_cursor(j, &end_cursor);
        if (r >= 0)
            r = sd_journal_get_realtime_usec(j, &end_realtime);
        if (r < 0)
            err = r;
        else
            have_end = 1;
    }
    Py_END_ALLOW_THREADS

    if (nomem || err) {
        free(end_cursor);
        free_kept(kept, n_kept);
        if (nomem)
            return PyErr_NoMemory();
        errno = -err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }

    PyObject *entries = PyList_New(n_kept);
    if (!entries)
        goto fail;
    for (Py_ssize_t i = 0; i < n_kept; i++) {
        Kept *k = &kept[i];
        PyObject *message = PyUnicode_DecodeUTF8(k->msg, (Py_ssize_t)k->msg_len, NULL);
        if (!message) {
            if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError))
                goto fail;
            PyErr_Clear();
            message = PyBytes_FromStringAndSize(k->msg, (Py_ssize_t)k->msg_len);
        }
        PyObject *items[5] = {
            message,
            PyFloat_FromDouble((double)k->realtime / 1000000.0),
            PyUnicode_FromString(k->cursor),
            optional_text(k->unit, k->unit_len, k->has_unit),
            optional_text(k->ident, k->ident_len, k->has_ident),
        };
        PyObject *entry = NULL;
        if (items[0] && items[1] && items[2] && items[3] && items[4])
            entry = PyObject_Vectorcall(entry_type, items, 5, NULL);
        for (int m = 0; m < 5; m++)
            Py_XDECREF(items[m]);
        if (!entry)
            goto fail;
        PyList_SET_ITEM(entries, i, entry);
    }
    free_kept(kept, n_kept);
    kept = NULL;
    PyObject *cursor_obj;
    if (have_end) {
        cursor_obj = PyUnicode_FromString(end_cursor);
        free(end_cursor);
        end_cursor = NULL;
        if (!cursor_obj) {
            Py_DECREF(entries);
            return NULL;
        }
    } else {
        cursor_obj = Py_None;
        Py_INCREF(cursor_obj);
    }
    return Py_BuildValue("(NnNKL)", entries, scanned, cursor_obj,
                         (unsigned long long)end_realtime, skip_until);

fail:
    Py_XDECREF(entries);
    free(end_cursor);
    if (kept)
        free_kept(kept, n_kept);
    return NULL;
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS,
     "scan(reader, entry_type, max_scan, max_keep, prefilter, skip_until_us, with_fields"
     "[, max_message]) -> (entries, scanned, end_cursor, end_realtime_us, skip_until_us); GIL released."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_jscan",
    "The journal source's scan loop in C, run without the GIL.", -1, methods,
};

PyMODINIT_FUNC PyInit__jscan(void) { return PyModule_Create(&module_def); }
