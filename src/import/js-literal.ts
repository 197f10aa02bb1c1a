/**
 * A parser for JavaScript *data* literals: what a minifier writes for a JSON value (objects with unquoted or
 * quoted keys, arrays, single- or double-quoted strings, numbers such as `.5` or `1e-3`, `true`/`false`/`null`
 * and their minified forms `!0`/`!1`, comments). It executes nothing: an identifier, call, operator or any other
 * code is an error naming its line and column. Used to read the model.json object out of a JS-wrapped model
 * file (nsfwjs's `model.min.js`) without running the file.
 */

/** A JS data literal that is not pure data, or not well formed. */
export class JsLiteralError extends Error {}

/**
 * Parses the data literal that starts at `src[start]` (after optional whitespace/comments).
 * @returns the value (plain objects, arrays, strings, finite numbers, booleans, null; keys such as
 *   `__proto__` become own properties, as with JSON.parse) and the index just after the literal.
 * @throws JsLiteralError naming the line and column of the first thing that is not data.
 */
export function parseJsLiteral(src: string, start = 0): { value: unknown; end: number } {
  const p = new Parser(src, start);
  const value = p.value(0);
  return { value, end: p.at };
}

const MAX_DEPTH = 1000;
const ESCAPES: Record<string, string> = { n: '\n', t: '\t', r: '\r', b: '\b', f: '\f', v: '\v', '0': '\0' };

class Parser {
  constructor(
    readonly src: string,
    public at: number,
  ) {}

  value(depth: number): unknown {
    if (depth > MAX_DEPTH) this.fail(`nesting deeper than ${MAX_DEPTH} levels`);
    this.skip();
    const c = this.src[this.at];
    if (c === '{') return this.object(depth);
    if (c === '[') return this.array(depth);
    if (c === '"' || c === "'") return this.string();
    if (c === '!') {
      // minified booleans: !0 is true, !1 is false
      const lit = this.src.slice(this.at, this.at + 2);
      if (lit === '!0' || lit === '!1') {
        this.at += 2;
        return lit === '!0';
      }
      this.fail('an expression');
    }
    if (c !== undefined && /[-+.\d]/.test(c)) return this.number();
    const word = /^[A-Za-z_$][\w$]*/.exec(this.src.slice(this.at, this.at + 64))?.[0];
    if (word === 'true' || word === 'false' || word === 'null') {
      this.at += word.length;
      return word === 'true' ? true : word === 'false' ? false : null;
    }
    this.fail(word ? `the identifier \`${word}\` (code, not data)` : c === undefined ? 'the end of the file' : `\`${c}\``);
  }

  object(depth: number): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    this.at++; // {
    for (;;) {
      this.skip();
      if (this.src[this.at] === '}') {
        this.at++;
        return out;
      }
      const key = this.key();
      this.skip();
      if (this.src[this.at] !== ':') this.fail(`\`${this.src[this.at] ?? 'end of file'}\` where ":" should follow key "${key}"`);
      this.at++;
      // an own property even for "__proto__", as JSON.parse does
      Object.defineProperty(out, key, { value: this.value(depth + 1), enumerable: true, writable: true, configurable: true });
      this.skip();
      const c = this.src[this.at];
      if (c === ',') this.at++;
      else if (c !== '}') this.fail(`\`${c ?? 'end of file'}\` where "," or "}" should follow`);
    }
  }

  key(): string {
    const c = this.src[this.at];
    if (c === '"' || c === "'") return this.string();
    const ident = /^[A-Za-z_$][\w$]*/.exec(this.src.slice(this.at, this.at + 256))?.[0];
    if (ident) {
      this.at += ident.length;
      return ident;
    }
    if (c !== undefined && /[\d.]/.test(c)) return String(this.number());
    this.fail(c === '[' ? 'a computed key' : `\`${c ?? 'end of file'}\` where a key should be`);
  }

  array(depth: number): unknown[] {
    const out: unknown[] = [];
    this.at++; // [
    for (;;) {
      this.skip();
      if (this.src[this.at] === ']') {
        this.at++;
        return out;
      }
      if (this.src[this.at] === ',') this.fail('an array hole (`,,`)');
      out.push(this.value(depth + 1));
      this.skip();
      const c = this.src[this.at];
      if (c === ',') this.at++;
      else if (c !== ']') this.fail(`\`${c ?? 'end of file'}\` where "," or "]" should follow`);
    }
  }

  string(): string {
    const quote = this.src[this.at]!;
    let out = '';
    let i = this.at + 1;
    for (;;) {
      const c = this.src[i];
      if (c === undefined || c === '\n' || c === '\r') {
        this.at = i;
        this.fail('an unterminated string');
      }
      if (c === quote) break;
      if (c !== '\\') {
        out += c;
        i++;
        continue;
      }
      const e = this.src[i + 1];
      if (e === undefined) {
        this.at = i;
        this.fail('an unterminated string');
      }
      if (e === 'x' || e === 'u') {
        const braced = e === 'u' && this.src[i + 2] === '{';
        const hex = braced
          ? /^\{([0-9a-fA-F]{1,6})\}/.exec(this.src.slice(i + 2, i + 11))
          : new RegExp(`^[0-9a-fA-F]{${e === 'x' ? 2 : 4}}`).exec(this.src.slice(i + 2, i + 6));
        if (!hex) {
          this.at = i;
          this.fail(`a malformed \\${e} escape`);
        }
        const code = Number.parseInt(braced ? hex[1]! : hex[0], 16);
        if (code > 0x10ffff) {
          this.at = i;
          this.fail('a \\u{…} escape beyond U+10FFFF');
        }
        out += String.fromCodePoint(code);
        i += 2 + hex[0].length;
        continue;
      }
      if (e === '\n' || e === '\u2028' || e === '\u2029')
        i += 2; // line continuation
      else if (e === '\r') i += this.src[i + 2] === '\n' ? 3 : 2;
      else {
        if (/[1-9]/.test(e) || (e === '0' && /\d/.test(this.src[i + 2] ?? ''))) {
          this.at = i;
          this.fail('an octal escape');
        }
        out += ESCAPES[e] ?? e;
        i += 2;
      }
    }
    this.at = i + 1;
    return out;
  }

  number(): number {
    const m = /^[-+]?(?:0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)/.exec(this.src.slice(this.at, this.at + 400));
    if (!m) this.fail(`\`${this.src[this.at]}\``);
    const text = m[0];
    const sign = text[0] === '-' ? -1 : 1;
    const body = text[0] === '-' || text[0] === '+' ? text.slice(1) : text;
    const n = Number(body);
    const v = n === 0 ? 0 : sign * n; // -0 reads as 0, as a JSON round trip makes it
    if (!Number.isFinite(v)) this.fail(`the number ${text}, which is not finite`);
    this.at += text.length;
    if (/[\w$]/.test(this.src[this.at] ?? '')) this.fail(`\`${text}${this.src[this.at]}\` (not a number)`);
    return v;
  }

  /** Skips whitespace and comments. */
  skip(): void {
    const s = this.src;
    for (;;) {
      const c = s[this.at];
      if (c === undefined) return;
      if (/\s/.test(c)) this.at++;
      else if (c === '/' && s[this.at + 1] === '/') {
        const nl = s.indexOf('\n', this.at);
        this.at = nl < 0 ? s.length : nl + 1;
      } else if (c === '/' && s[this.at + 1] === '*') {
        const end = s.indexOf('*/', this.at + 2);
        if (end < 0) this.fail('an unterminated comment');
        this.at = end + 2;
      } else return;
    }
  }

  fail(what: string): never {
    const before = this.src.slice(0, this.at);
    const line = before.split('\n').length;
    const col = this.at - before.lastIndexOf('\n');
    const snippet = this.src.slice(this.at, this.at + 40).replace(/\s+/g, ' ');
    throw new JsLiteralError(`line ${line}, column ${col}: found ${what}${snippet ? ` ("${snippet}")` : ''}`);
  }
}
