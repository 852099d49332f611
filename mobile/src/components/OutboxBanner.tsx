import { StyleSheet, View } from 'react-native';

import { useSession } from '../auth/session';
import { useOutbox } from '../offline/useOutbox';
import { Banner, Button, space } from '../ui';

/** "N cases waiting to be sent", with a button to try now. */
export function OutboxBanner() {
  const { user } = useSession();
  const { items, sending, flush } = useOutbox(user?.id);
  if (!items.length) return null;
  const failed = items.filter((i) => i.lastError);
  return (
    <View style={styles.wrap} testID="outbox-banner">
      <Banner
        tone="warning"
        title={`${items.length} ${items.length === 1 ? 'case is' : 'cases are'} waiting to be sent`}
        message={
          failed.length
            ? `Not accepted: ${failed.map((f) => `${f.patientLabel}: ${f.lastError}`).join(' ')}`
            : 'They are stored on this device and will be sent automatically when the connection returns.'
        }
      />
      <Button compact variant="secondary" title="Send now" onPress={flush} busy={sending} testID="outbox-send-now" />
    </View>
  );
}

const styles = StyleSheet.create({ wrap: { marginBottom: space.lg, gap: space.xs } });
