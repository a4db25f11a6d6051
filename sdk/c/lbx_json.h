/* lbx_json.h: a small pull reader for the JSON that `init` receives ([plugin.config] as JSON).
 *
 * Part of the C plugin SDK (header-only, no allocation except for the strings it returns).
 * It reads one value at a time, in document order, so a plugin walks its configuration with
 * loops rather than building a tree: enter an object, take each member's key, then read or
 * skip its value. Any malformed input sets `error` and makes every later call fail, so a
 * plugin checks once, at the end.
 *
 *     lbx_json j = lbx_json_begin(config);
 *     char *key;
 *     if (lbx_json_enter_object(&j))
 *         while (lbx_json_next_member(&j, &key)) {
 *             if (strcmp(key, "name") == 0) lbx_json_string(&j, &name); else lbx_json_skip(&j);
 *             free(key);
 *         }
 *     if (j.error) return "the configuration is not valid JSON";
 */
#ifndef LBX_JSON_H
#define LBX_JSON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lbx_router.h"

typedef struct lbx_json {
    const char *at;
    const char *end;
    bool error;
    /* Whether a value was read since the last '{' '[' or ',' (so the next member needs ','). */
    bool after_value;
} lbx_json;

static inline lbx_json lbx_json_begin(lbx_str text) {
    lbx_json j = {text.ptr, text.ptr + text.len, false, false};
    return j;
}

static inline char lbx_json_peek(lbx_json *j) {
    while (j->at < j->end && (*j->at == ' ' || *j->at == '\t' || *j->at == '\n' || *j->at == '\r'))
        j->at++;
    return j->at < j->end ? *j->at : '\0';
}

static inline bool lbx__json_fail(lbx_json *j) {
    j->error = true;
    return false;
}

static inline bool lbx__json_expect(lbx_json *j, char c) {
    if (j->error || lbx_json_peek(j) != c) return lbx__json_fail(j);
    j->at++;
    return true;
}

/** Consume '{'. */
static inline bool lbx_json_enter_object(lbx_json *j) {
    j->after_value = false;
    return lbx__json_expect(j, '{');
}

/** Consume '['. */
static inline bool lbx_json_enter_array(lbx_json *j) {
    j->after_value = false;
    return lbx__json_expect(j, '[');
}

/* Before the next member or element: false (and the closer consumed) at `close`. */
static inline bool lbx__json_next(lbx_json *j, char close) {
    if (j->error) return false;
    char c = lbx_json_peek(j);
    if (c == close) {
        j->at++;
        j->after_value = true;
        return false;
    }
    if (j->after_value && !lbx__json_expect(j, ',')) return false;
    j->after_value = false;
    return true;
}

static inline void lbx__json_utf8(char **out, uint32_t cp) {
    char *o = *out;
    if (cp < 0x80) {
        *o++ = (char)cp;
    } else if (cp < 0x800) {
        *o++ = (char)(0xC0 | (cp >> 6));
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *o++ = (char)(0xE0 | (cp >> 12));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else {
        *o++ = (char)(0xF0 | (cp >> 18));
        *o++ = (char)(0x80 | ((cp >> 12) & 0x3F));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    }
    *out = o;
}

static inline bool lbx__json_hex4(lbx_json *j, uint32_t *cp) {
    if (j->end - j->at < 4) return lbx__json_fail(j);
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = *j->at++;
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (uint32_t)(c - 'A' + 10);
        else return lbx__json_fail(j);
    }
    *cp = v;
    return true;
}

/** Read a string value, unescaped, into a NUL-terminated heap copy (*out; free() it). */
static inline bool lbx_json_string(lbx_json *j, char **out) {
    *out = NULL;
    if (!lbx__json_expect(j, '"')) return false;
    /* Unescaping never lengthens: \uXXXX (6 bytes) is at most 3 bytes of UTF-8, a surrogate
     * pair (12) 4. So the rest of the input bounds the copy. */
    char *buf = (char *)malloc((size_t)(j->end - j->at) + 1), *o = buf;
    if (!buf) abort();
    while (j->at < j->end && *j->at != '"') {
        char c = *j->at++;
        if ((unsigned char)c < 0x20) break;
        if (c != '\\') {
            *o++ = c;
            continue;
        }
        if (j->at >= j->end) break;
        char e = *j->at++;
        uint32_t cp;
        switch (e) {
        case '"': case '\\': case '/': *o++ = e; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u':
            if (!lbx__json_hex4(j, &cp)) break;
            if (cp >= 0xD800 && cp < 0xDC00 && j->end - j->at >= 6 && j->at[0] == '\\' && j->at[1] == 'u') {
                uint32_t low;
                j->at += 2;
                if (!lbx__json_hex4(j, &low) || low < 0xDC00 || low > 0xDFFF) {
                    j->error = true;
                    break;
                }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
            }
            lbx__json_utf8(&o, cp);
            break;
        default: j->error = true;
        }
        if (j->error) break;
    }
    if (j->error || j->at >= j->end || *j->at != '"') {
        free(buf);
        return lbx__json_fail(j);
    }
    j->at++;
    *o = '\0';
    *out = buf;
    j->after_value = true;
    return true;
}

/** Read a number value. */
static inline bool lbx_json_number(lbx_json *j, double *out) {
    if (j->error) return false;
    lbx_json_peek(j);
    char digits[64];
    size_t n = 0;
    while (j->at < j->end && n < sizeof digits - 1 && strchr("+-0123456789.eE", *j->at) && *j->at)
        digits[n++] = *j->at++;
    digits[n] = '\0';
    char *stop;
    *out = strtod(digits, &stop);
    if (n == 0 || *stop != '\0') return lbx__json_fail(j);
    j->after_value = true;
    return true;
}

/** Read true or false. */
static inline bool lbx_json_bool(lbx_json *j, bool *out) {
    if (j->error) return false;
    char c = lbx_json_peek(j);
    const char *word = c == 't' ? "true" : "false";
    size_t len = strlen(word);
    if ((size_t)(j->end - j->at) < len || memcmp(j->at, word, len) != 0) return lbx__json_fail(j);
    j->at += len;
    *out = c == 't';
    j->after_value = true;
    return true;
}

/** The next member's key of the object being read (*key: heap copy, free() it); false at '}'. */
static inline bool lbx_json_next_member(lbx_json *j, char **key) {
    *key = NULL;
    if (!lbx__json_next(j, '}')) return false;
    if (!lbx_json_string(j, key)) return false;
    if (!lbx__json_expect(j, ':')) {
        free(*key);
        *key = NULL;
        return false;
    }
    j->after_value = false;
    return true;
}

/** Whether the array being read has another element (then read it); false at ']'. */
static inline bool lbx_json_next_element(lbx_json *j) { return lbx__json_next(j, ']'); }

/** Skip one value of any kind. */
static inline bool lbx_json_skip(lbx_json *j) {
    char c = lbx_json_peek(j);
    char *s;
    double d;
    bool b;
    if (c == '{') {
        lbx_json_enter_object(j);
        while (lbx_json_next_member(j, &s)) {
            free(s);
            lbx_json_skip(j);
        }
    } else if (c == '[') {
        lbx_json_enter_array(j);
        while (lbx_json_next_element(j)) lbx_json_skip(j);
    } else if (c == '"') {
        if (lbx_json_string(j, &s)) free(s);
    } else if (c == 't' || c == 'f') {
        lbx_json_bool(j, &b);
    } else if (c == 'n') {
        if ((size_t)(j->end - j->at) < 4 || memcmp(j->at, "null", 4) != 0) return lbx__json_fail(j);
        j->at += 4;
        j->after_value = true;
    } else {
        lbx_json_number(j, &d);
    }
    return !j->error;
}

#endif /* LBX_JSON_H */
