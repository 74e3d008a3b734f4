/**
 * The service provider interface for run stores: what a database adapter implements. Stable for
 * store authors; a store is proven correct by extending the contract suite in
 * {@code agentrunner-store-tck}.
 */
package dev.agentrunner.spi;
