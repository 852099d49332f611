import { RoleStack } from '../../components/roleStack';
import { useSession } from '../../auth/session';
import { OutboxSync } from '../../offline/useOutbox';

export default function Layout() {
  const { user } = useSession();
  return (
    <>
      {user?.role === 'clinician' ? <OutboxSync ownerId={user.id} /> : null}
      <RoleStack role="clinician" />
    </>
  );
}
