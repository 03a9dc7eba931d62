package org.apache.iceberg.rest;

import java.net.InetSocketAddress;
import java.util.HashMap;
import java.util.Map;
import org.apache.iceberg.CatalogProperties;
import org.apache.iceberg.CatalogUtil;
import org.apache.iceberg.catalog.Catalog;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.servlet.ServletContextHandler;
import org.eclipse.jetty.servlet.ServletHolder;

/**
 * Serves Iceberg's REST catalog test adapter (the one behind RESTCatalogServer) over a JDBC catalog,
 * bound to one address only. RESTCatalogServer itself binds every interface.
 *
 * <p>Usage: LoopbackRESTCatalogServer HOST PORT JDBC_URI WAREHOUSE_URI
 */
public final class LoopbackRESTCatalogServer {
  private LoopbackRESTCatalogServer() {}

  public static void main(String[] args) throws Exception {
    if (args.length != 4) {
      throw new IllegalArgumentException("usage: HOST PORT JDBC_URI WAREHOUSE_URI");
    }
    Map<String, String> props = new HashMap<>();
    props.put(CatalogProperties.CATALOG_IMPL, "org.apache.iceberg.jdbc.JdbcCatalog");
    props.put(CatalogProperties.URI, args[2]);
    props.put(CatalogProperties.WAREHOUSE_LOCATION, args[3]);
    props.put("jdbc.schema-version", "V1");
    // One connection to the SQLite file: with two, concurrent commits can each hold a lock the
    // other needs, SQLite fails one with SQLITE_BUSY at once (no wait can resolve it), and a
    // connection left in its transaction keeps the database locked for every later request.
    props.put(CatalogProperties.CLIENT_POOL_SIZE, "1");
    Catalog catalog =
        CatalogUtil.buildIcebergCatalog("rest_backend", props, new org.apache.hadoop.conf.Configuration());

    ServletContextHandler context = new ServletContextHandler(ServletContextHandler.NO_SESSIONS);
    context.addServlet(new ServletHolder(new RESTCatalogServlet(new RESTCatalogAdapter(catalog))), "/*");
    Server server = new Server(new InetSocketAddress(args[0], Integer.parseInt(args[1])));
    server.setHandler(context);
    server.setStopAtShutdown(true);
    server.start();
    server.join();
  }
}
