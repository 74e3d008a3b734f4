package dev.agentrunner.examples.service;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * An error answered as {@code application/problem+json} (RFC 9457): the HTTP status, a short
 * title, a detail meant for the caller, and extension members such as {@code active_run_id}.
 * Thrown anywhere in request handling and rendered by {@link AgentService}, so a handler never
 * writes an error response by hand and every error has the same shape.
 *
 * <p>Thread-safety: not meant to be shared while its extensions are being added.
 */
public final class Problem extends RuntimeException {
  private static final long serialVersionUID = 1L;

  private final int status;
  private final String title;
  private final transient Map<String, Object> extensions = new LinkedHashMap<>();
  private final transient Map<String, String> headers = new LinkedHashMap<>();

  /** A problem with the given status, title and detail. */
  public Problem(int status, String title, String detail) {
    super(detail, null, false, false); // expected outcomes: no stack trace needed
    this.status = status;
    this.title = title;
  }

  /** 400: the request cannot be understood (bad JSON, a missing field, a bad cursor). */
  public static Problem badRequest(String detail) {
    return new Problem(400, "Bad Request", detail);
  }

  /** 404: no such agent, run or endpoint. */
  public static Problem notFound(String detail) {
    return new Problem(404, "Not Found", detail);
  }

  /** 409: the request conflicts with the state of a run or a conversation. */
  public static Problem conflict(String detail) {
    return new Problem(409, "Conflict", detail);
  }

  /** 413: the body is larger than the service accepts. */
  public static Problem tooLarge(String detail) {
    return new Problem(413, "Content Too Large", detail);
  }

  /** 503: the service is shutting down or its store cannot be reached. */
  public static Problem unavailable(String detail) {
    return new Problem(503, "Service Unavailable", detail);
  }

  /** This problem with one more member in its body. */
  public Problem with(String name, Object value) {
    extensions.put(name, value);
    return this;
  }

  /** This problem with a response header (such as {@code Allow} or {@code Retry-After}). */
  public Problem header(String name, String value) {
    headers.put(name, value);
    return this;
  }

  /** 405: the path exists, the method does not. */
  public static Problem methodNotAllowed(String method, String allowed) {
    return new Problem(405, "Method Not Allowed", method + " is not supported here; use "
        + allowed).header("Allow", allowed);
  }

  /** The HTTP status. */
  public int status() {
    return status;
  }

  /** The short, status-level title. */
  public String title() {
    return title;
  }

  /** The explanation for this occurrence. */
  public String detail() {
    return getMessage();
  }

  /** Extension members, in the order they were added. */
  public Map<String, Object> extensions() {
    return extensions;
  }

  /** Response headers to send with the problem. */
  public Map<String, String> headers() {
    return headers;
  }
}
