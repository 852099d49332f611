export { default } from '../../screens/admin/AdminHome';
