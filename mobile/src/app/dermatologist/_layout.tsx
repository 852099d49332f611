import { RoleStack } from '../../components/roleStack';

export default function Layout() {
  return <RoleStack role="dermatologist" />;
}
