package dev.agentrunner.internal;

/** UTF-8 sizes without encoding, so a size check on a large input allocates nothing. */
final class Utf8 {
  private Utf8() {}

  /** The number of bytes {@code s} takes in UTF-8 (a lone surrogate counts as '?', 1 byte). */
  static long length(CharSequence s) {
    long bytes = 0;
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      if (c < 0x80) {
        bytes += 1;
      } else if (c < 0x800) {
        bytes += 2;
      } else if (Character.isHighSurrogate(c) && i + 1 < s.length()
          && Character.isLowSurrogate(s.charAt(i + 1))) {
        bytes += 4;
        i++;
      } else if (Character.isSurrogate(c)) {
        bytes += 1;
      } else {
        bytes += 3;
      }
    }
    return bytes;
  }
}
