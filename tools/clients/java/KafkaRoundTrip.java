// A Kafka round trip with Apache Kafka's own Java client, written the ordinary way: a client
// family we did not write, for proving that record/replay is not shaped around our worker.
//
// Usage: java -cp 'classes:libs/*' KafkaRoundTrip BOOTSTRAP TOPIC COUNT OUT [GROUP]
//
// Creates TOPIC (1 partition) with AdminClient, produces COUNT keyed records with headers
// (default producer settings: idempotence on, default linger), consumes them with a consumer
// group (subscribe, auto commit) and writes OUT: one line per record in offset order, then the
// count. OUT depends only on COUNT (never on time, ids or the topic name), so two runs against
// fresh topics write the same bytes.
//
// Environment: CLIENT_COMPRESSION sets the producer's compression.type (gzip, snappy, lz4, zstd;
// unset: the client's default, none). CLIENT_ID=random gives the admin client, producer and
// consumer one client.id, "svc-" + 8 random hex digits (new each run), and names the topic and
// group by it (TOPIC.<client id>, GROUP.<client id>), as a service that names its own queues
// does; OUT stays the same bytes.
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.CommonClientConfigs;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public final class KafkaRoundTrip {
  private static final Duration DEADLINE = Duration.ofSeconds(90);
  private static String clientId = null;

  public static void main(String[] args) throws Exception {
    if (args.length < 4 || args.length > 5) {
      System.err.println("usage: KafkaRoundTrip BOOTSTRAP TOPIC COUNT OUT [GROUP]");
      System.exit(2);
    }
    String bootstrap = args[0];
    String topic = args[1];
    int count = Integer.parseInt(args[2]);
    Path out = Path.of(args[3]);
    String group = args.length == 5 ? args[4] : topic + ".group";
    if ("random".equals(System.getenv("CLIENT_ID"))) {
      clientId = String.format("svc-%08x", new SecureRandom().nextInt());
      topic = topic + "." + clientId;
      group = group + "." + clientId;
    }

    createTopic(bootstrap, topic);
    produce(bootstrap, topic, count);
    List<String> lines = consume(bootstrap, topic, group, count);
    if (lines.size() != count) {
      System.err.printf("consumed %d of %d records before the deadline%n", lines.size(), count);
      System.exit(1);
    }
    lines.add("count " + count);
    Path parent = out.toAbsolutePath().getParent();
    if (parent != null) {
      Files.createDirectories(parent);
    }
    Files.write(out, (String.join("\n", lines) + "\n").getBytes(StandardCharsets.UTF_8));
  }

  private static void createTopic(String bootstrap, String topic)
      throws InterruptedException, ExecutionException {
    Properties props = new Properties();
    props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    if (clientId != null) {
      props.put(CommonClientConfigs.CLIENT_ID_CONFIG, clientId);
    }
    try (Admin admin = Admin.create(props)) {
      admin.createTopics(List.of(new NewTopic(topic, 1, (short) 1))).all().get();
    } catch (ExecutionException e) {
      if (!(e.getCause() instanceof TopicExistsException)) {
        throw e;
      }
    }
  }

  private static void produce(String bootstrap, String topic, int count)
      throws InterruptedException, ExecutionException {
    Properties props = new Properties();
    props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    if (clientId != null) {
      props.put(CommonClientConfigs.CLIENT_ID_CONFIG, clientId);
    }
    props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
    props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
    String compression = System.getenv("CLIENT_COMPRESSION");
    if (compression != null && !compression.isEmpty()) {
      props.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, compression);
    }
    try (KafkaProducer<String, String> producer = new KafkaProducer<>(props)) {
      for (int i = 0; i < count; i++) {
        ProducerRecord<String, String> record =
            new ProducerRecord<>(topic, "key-" + (i % 7), "{\"n\":" + i + ",\"sq\":" + i * i + "}");
        record.headers().add("n", Integer.toString(i).getBytes(StandardCharsets.UTF_8));
        record.headers().add("parity", (i % 2 == 0 ? "even" : "odd").getBytes(StandardCharsets.UTF_8));
        producer.send(record);
      }
      producer.flush();
    }
  }

  private static List<String> consume(String bootstrap, String topic, String group, int count) {
    Properties props = new Properties();
    props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    if (clientId != null) {
      props.put(CommonClientConfigs.CLIENT_ID_CONFIG, clientId);
    }
    props.put(ConsumerConfig.GROUP_ID_CONFIG, group);
    props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
    props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
    List<String> lines = new ArrayList<>();
    long deadline = System.nanoTime() + DEADLINE.toNanos();
    try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(props)) {
      consumer.subscribe(List.of(topic));
      while (lines.size() < count && System.nanoTime() < deadline) {
        for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(500))) {
          lines.add(line(r));
        }
      }
    }
    return lines;
  }

  private static String line(ConsumerRecord<String, String> r) {
    StringBuilder headers = new StringBuilder();
    for (Header h : r.headers()) {
      if (headers.length() > 0) {
        headers.append(',');
      }
      headers.append(h.key()).append('=').append(new String(h.value(), StandardCharsets.UTF_8));
    }
    return r.offset() + "\t" + r.key() + "\t" + r.value() + "\t" + headers;
  }

  private KafkaRoundTrip() {}
}
