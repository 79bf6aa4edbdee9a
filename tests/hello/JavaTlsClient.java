// A JSSE (Java's own TLS stack) client for capture_client_hellos.py, run with the single-file
// source launcher: java JavaTlsClient.java PORT SERVER_NAME ALPN[,ALPN...]
import java.io.IOException;
import java.util.List;
import javax.net.ssl.SNIHostName;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLSocket;

public class JavaTlsClient {
  public static void main(String[] args) throws Exception {
    SSLContext context = SSLContext.getDefault();
    try (SSLSocket socket =
        (SSLSocket) context.getSocketFactory().createSocket("127.0.0.1", Integer.parseInt(args[0]))) {
      socket.setSoTimeout(15000);
      SSLParameters parameters = socket.getSSLParameters();
      parameters.setServerNames(List.of(new SNIHostName(args[1])));
      parameters.setApplicationProtocols(args[2].split(","));
      socket.setSSLParameters(parameters);
      socket.startHandshake();
    } catch (IOException expected) {
      // the capture listener hangs up after the ClientHello
    }
  }
}
