export { default } from '../../screens/admin/Users';
