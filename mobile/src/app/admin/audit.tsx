export { default } from '../../screens/admin/Audit';
